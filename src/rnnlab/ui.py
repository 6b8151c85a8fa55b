"""Where rnnlab talks to people: one rich console on stderr for notices and progress.

Generated text goes to stdout; everything about the run (notices, progress, summaries) goes here, so
`rnnlab sample DIR > out.txt` captures only the sample.
"""

from rich.console import Console

console = Console(stderr=True, highlight=False)


def notice(message: str) -> None:
    """A one-line note that does not stop the run (e.g. a skipped binary file)."""
    console.print(f"[dim]note:[/dim] {message}", soft_wrap=True)
