from tenure.cli.main import run

run()
