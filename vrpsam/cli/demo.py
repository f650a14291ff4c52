"""``vrpsam-demo`` (what ``make demo`` runs): see :func:`vrpsam.demo.run.run_demo`."""

from __future__ import annotations

from vrpsam.demo.run import run_demo


def main(argv: list[str] | None = None) -> None:
    run_demo(argv)


if __name__ == "__main__":
    main()
