import typer

app = typer.Typer(help="audit commands.", no_args_is_help=True)
