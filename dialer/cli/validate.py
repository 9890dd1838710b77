"""`dialer validate PATH...`: check config and campaign files without starting anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dialer.config.loader import config_files, validate_paths
from dialer.ivr.loader import flow_from_document


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check config and campaign files",
        description=(
            "Check the daemon config and campaign files. A file with a top-level 'ami' key is "
            "the daemon config; any other is a campaign. Prints one 'file:line: field: "
            "message' line per problem and exits 1 if there is any."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH",
        help="a YAML file, or a directory whose *.yaml and *.yml files are all checked",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    issues = validate_paths(args.paths, flows=flow_from_document)
    for issue in issues:
        print(issue, file=sys.stderr)
    if issues:
        return 1
    files, _ = config_files(args.paths)
    count = len(dict.fromkeys(files))
    print(f"ok: {count} files")
    return 0
