"""``stc fleet``: roll a bundle out to many edge nodes (placeholder filled below)."""
import typer

app = typer.Typer(help="Fleets of edge nodes: deploy, status, rollback.", no_args_is_help=True,
                  add_completion=False)
