from portal.core.files import data_folder


def test_data_folder_makes_a_missing_folder_with_its_parents(data_dir):
    path = data_folder("models/demo")

    assert path == data_dir / "models" / "demo"
    assert path.is_dir()


def test_data_folder_keeps_an_existing_folder_and_its_files(data_dir):
    (data_folder("tmp") / "work.dcm").write_bytes(b"x")

    assert (data_folder("tmp") / "work.dcm").read_bytes() == b"x"
