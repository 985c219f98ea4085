from tuneyard.cli.main import app

app()
