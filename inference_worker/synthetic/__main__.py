from inference_worker.synthetic.generator import main

main()
