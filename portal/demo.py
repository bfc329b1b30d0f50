"""Demo data (being written)."""
import click


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Load demo data."""
    raise click.ClickException("not yet written")
