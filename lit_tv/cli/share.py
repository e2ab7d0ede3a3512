"""`lit-tv-share`: a task vector as a folder with its model card (`lit_tv.vectors.sharing.save_pretrained`), and
pushed to the Hugging Face Hub when a repo id is given. A bad input ends it with one line and exit status 1, as
`lit-tv` does.

    lit-tv-share --vector logs/shapes_mtv_colour/task_vector.safetensors \\
        --scores logs/shapes_mtv_colour/version_1/test_scores.json --folder shared/colour [--repo_id user/name]
"""

from __future__ import annotations

from jsonargparse import ArgumentParser

from lit_tv.cli.command import run_as_command
from lit_tv.vectors.sharing import push_to_hub, save_pretrained


def parser() -> ArgumentParser:
    share = ArgumentParser(prog="lit-tv-share", description="Share a task vector: a folder with its model card.")
    share.add_argument("--vector", required=True, help="the task-vector file (or a folder or hub id holding one)")
    share.add_argument(
        "--scores", nargs="+", default=[], help="test_scores.json files of `lit-tv test` runs that used this vector"
    )
    share.add_argument("--folder", required=True, help="the folder to write: task_vector.safetensors and README.md")
    share.add_argument("--repo_id", type=str | None, default=None, help="push the folder to this hub repo (user/name)")
    share.add_argument("--revision", type=str | None, default=None, help="the branch to push to (default: main)")
    share.add_argument("--private", action="store_true", help="create the hub repo private")
    share.add_argument("--overwrite", action="store_true", help="replace the files of an existing folder")
    return share


def share(argv: list[str] | None = None) -> None:
    options = parser().parse_args(argv)
    folder = save_pretrained(options.vector, options.folder, options.scores, options.overwrite, options.repo_id)
    print(f"wrote {folder}/ (task_vector.safetensors, README.md)")
    if options.repo_id is not None:
        url = push_to_hub(folder, options.repo_id, options.revision, options.private)
        print(f"pushed to {options.repo_id}: {url}")


def main(argv: list[str] | None = None) -> None:
    """`lit-tv-share ...` (None: the command line)."""
    run_as_command(lambda: share(argv))


if __name__ == "__main__":
    main()
