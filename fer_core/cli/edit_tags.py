"""`python -m fer_core edit tag|untag|tags`: free-form tags on images (fer_core.curation.tags).

Tags are reviewers' notes kept in the workspace database, not edits: they change no label and
drop nothing. `edit.py` registers these subcommands beside the others, with the same --workspace
and --author options.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fer_core.cli.edit import load_bound_dataset
from fer_core.curation import tags


def register_tag_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name, function, help_text in (("tag", run_tag, "put a tag on images (a note; changes no label)"),
                                      ("untag", run_untag, "take a tag off images")):
        parser = commands.add_parser(name, parents=[common], help=help_text)
        parser.add_argument("data", metavar="DATA", nargs="?",
                            help="the dataset (default $FER_DATA, else the workspace's recorded data path)")
        parser.add_argument("--ids", metavar="ID", nargs="+", default=[], help="the images' sample ids")
        parser.add_argument("--ids-file", metavar="FILE", help="a text file of sample ids, one per line")
        parser.add_argument("--tag", required=True, metavar="NAME",
                            help=f"one line of at most {tags.MAX_TAG_CHARACTERS} characters")
        parser.set_defaults(func=function)

    listing = commands.add_parser("tags", parents=[common], help="every tag with its image count")
    listing.add_argument("--tag", metavar="NAME", help="list the images carrying this tag instead")
    listing.add_argument("--json", action="store_true", help="print JSON instead of lines")
    listing.set_defaults(func=run_tags)


def read_ids(args: argparse.Namespace) -> list[str]:
    """--ids, then the lines of --ids-file (blank lines skipped); ValueError when neither names an id."""
    ids = list(args.ids)
    if args.ids_file:
        path = Path(args.ids_file)
        if not path.is_file():
            raise ValueError(f"--ids-file {path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"--ids-file {path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise ValueError("no images given: pass --ids ID... or --ids-file FILE")
    return ids


def run_tag(args: argparse.Namespace) -> int:
    return _change(args, tags.add_tag)


def run_untag(args: argparse.Namespace) -> int:
    return _change(args, tags.remove_tag)


def _change(args: argparse.Namespace, change) -> int:
    tag = tags.check_tag_name(args.tag)  # the cheap checks before the dataset loads
    ids = read_ids(args)
    dataset = load_bound_dataset(args.data, args.workspace)
    batch = change(dataset, ids, tag, author=args.author, workspace=args.workspace)
    verb = "tagged" if batch.action == tags.TAG else "untagged"
    state = "had it already" if batch.action == tags.TAG else "did not have it"
    done = f"{verb} {len(batch.changed):,} image(s) {batch.tag!r}"
    print(f"{done} in batch {batch.batch_id}" if batch.batch_id else f"nothing to do: {done}", end="")
    print(f" ({batch.already:,} {state})" if batch.already else "")
    return 0


def run_tags(args: argparse.Namespace) -> int:
    if args.tag is not None:
        chosen = tags.check_tag_name(args.tag)
        ids = sorted(tags.images_with_tags([chosen], args.workspace))
        print(json.dumps(ids, indent=2) if args.json else "\n".join(ids) or f"no image is tagged {chosen!r}")
        return 0
    counts = tags.list_tags(args.workspace)
    if args.json:
        print(json.dumps([{"tag": tag, "images": count} for tag, count in counts], indent=2))
    else:
        print("\n".join(f"{count:>7,}  {tag}" for tag, count in counts) or "no tags yet")
    return 0
