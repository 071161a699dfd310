import gc
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from django.core.management import call_command

from portal.ingest.models import Image, Site, Upload
from tests.conftest import manage
from tests.dicom_files import make_dicom

pytestmark = pytest.mark.django_db(transaction=True)


def test_ingest_json_report_lists_every_file_and_exits_1_when_any_is_rejected(tmp_path, data_dir):
    folder = tmp_path / "site-export"
    make_dicom(folder / "a.dcm", sex="M")
    make_dicom(folder / "deep" / "b.dcm", birth_date=None, patient_age="003Y")
    make_dicom(folder / "ct.dcm", modality="CT")

    result = manage(
        "ingest", str(folder), "--site", "east", "--create-site", "--json", data_dir=data_dir
    )

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"upload", "accepted", "duplicates", "rejected"}
    images = {img.pk: img for img in Image.objects.all()}
    assert report["accepted"] == [
        {
            "file": "#1",
            "name": "a.dcm",
            "index": 1,
            "entry": None,
            "image": report["accepted"][0]["image"],
            "sex": "M",
            "age_days": 1772,
            "age_source": "birthdate",
            "warning": "",
        },
        {
            "file": "#3",
            "name": "deep/b.dcm",
            "index": 3,
            "entry": None,
            "image": report["accepted"][1]["image"],
            "sex": "F",
            "age_days": 1096,
            "age_source": "patient_age",
            "warning": "",
        },
    ]
    assert set(images) == {e["image"] for e in report["accepted"]}
    assert report["rejected"] == [
        {
            "file": "#2",
            "name": "ct.dcm",
            "index": 2,
            "entry": None,
            "reason": "modality CT is not a radiograph (expected CR or DX)",
            "warning": "",
        }
    ]
    assert report["duplicates"] == []
    assert "3/3" in result.stderr  # the progress bar


def test_ingest_exits_0_when_nothing_is_rejected_and_reports_duplicates(tmp_path, data_dir):
    make_dicom(tmp_path / "a.dcm")
    first = manage(
        "ingest",
        str(tmp_path / "a.dcm"),
        "--site",
        "east",
        "--create-site",
        "--json",
        data_dir=data_dir,
    )
    again = manage("ingest", str(tmp_path / "a.dcm"), "--site", "east", "--json", data_dir=data_dir)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    duplicates = json.loads(again.stdout)["duplicates"]
    assert [(d["file"], d["name"]) for d in duplicates] == [("#1", "a.dcm")]


def test_ingest_without_json_prints_a_summary_and_the_rejections(tmp_path, data_dir):
    make_dicom(tmp_path / "in" / "ct.dcm", modality="CT")
    make_dicom(tmp_path / "in" / "ok.dcm")
    result = manage(
        "ingest", str(tmp_path / "in"), "--site", "east", "--create-site", data_dir=data_dir
    )
    assert result.returncode == 1
    assert "1 accepted, 0 duplicates, 1 rejected" in result.stdout
    assert "rejected ct.dcm (#1): modality CT is not a radiograph" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "{tmp}/a.dcm", "--site", "nowhere"], "does not exist"),
        (["ingest", "{tmp}/missing", "--site", "east", "--create-site"], "no such file"),
        (["ingest", "--site", "east"], "PATH"),
        (["ingest", "{tmp}/a.dcm"], "--site"),
    ],
)
def test_usage_errors_exit_2_and_store_nothing(args, message, tmp_path, data_dir):
    make_dicom(tmp_path / "a.dcm")
    result = manage(*[a.format(tmp=tmp_path) for a in args], data_dir=data_dir)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr  # nor the workers' (a pool torn down early)
    assert Image.objects.count() == 0
    assert not Site.objects.filter(slug="nowhere").exists()


def test_help_prints_the_usage_and_nothing_else(data_dir):
    result = manage("ingest", "--help", data_dir=data_dir)
    assert result.returncode == 0
    assert "--site" in result.stdout
    assert result.stderr == ""


class _Sink:
    """A stdout that keeps nothing of what is written, noting the Python heap the command
    holds (what is reachable: garbage collected first) at its first write and every 200th:
    while it prints its report, when a report or a name held for every file would all be
    there at once."""

    def __init__(self) -> None:
        self.chars = self.writes = self.most = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        if self.writes % 200 == 0:
            gc.collect()
            self.most = max(self.most, tracemalloc.get_traced_memory()[0])
        self.writes += 1
        return len(text)

    def flush(self) -> None:
        pass


def _ingest_memory(folder: Path, site: str) -> tuple[int, Upload]:
    """`ingest --json` of `folder`, run in this process: the most heap it held while printing
    (tracemalloc: the command's own memory, its worker processes apart), and its upload."""
    sink = _Sink()
    tracemalloc.start()
    try:
        call_command(
            "ingest",
            str(folder),
            "--site",
            site,
            "--create-site",
            "--json",
            verbosity=0,
            stdout=sink,
        )
    finally:
        tracemalloc.stop()
    upload = Upload.objects.filter(site__slug=site).get()
    assert sink.chars > 100 * upload.total_files  # the report was written, a line a file
    return sink.most, upload


@pytest.mark.slow
def test_the_commands_memory_does_not_grow_with_the_number_of_files(tmp_path, data_dir):
    """A report line held per file (about a kilobyte) would make an archive of a million
    files cost a gigabyte; the report is written as it is read, and the operator's names wait
    on disk."""
    originals = tmp_path / "originals"
    for n in range(10):
        make_dicom(originals / f"{n}.dcm", seed=n)
    sizes = {"few": 600, "many": 3000}
    for label, count in sizes.items():
        folder = tmp_path / label
        folder.mkdir()
        for n in range(count):  # distinct names, mostly duplicate films: a line each
            shutil.copyfile(
                originals / f"{n % 10}.dcm", folder / f"film-{n:05d}-of-a-long-name.dcm"
            )

    _ingest_memory(originals, "warm-up")  # imports and caches filled once, outside the figures
    held = {}
    for label, count in sizes.items():
        held[label], upload = _ingest_memory(tmp_path / label, label)
        assert (upload.total_files, upload.accepted_count) == (count, 10)

    per_file = (held["many"] - held["few"]) / (sizes["many"] - sizes["few"])
    assert per_file < 100, f"{per_file:.0f} bytes more for each file"
