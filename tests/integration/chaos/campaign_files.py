"""Campaign-file faults: 50 files dropped at once, edits, broken versions, removals."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import yaml

from tests.integration.chaos.lab_setup import (
    CHAOS,
    ChaosLab,
    chaos_campaign,
    dropped_campaign,
    hostile_campaign,
    write_yaml,
)

DROP_COUNT = 50


def _atomic_write(path: Path, text: str, staging: Path) -> None:
    tmp = staging / (path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def drop_files(lab: ChaosLab, rng: random.Random, batch: int) -> tuple[str, list[str]]:
    """Move 50 files in at once: valid ones, a broken one, a hostile one, a symlink out of
    the directory; then write one more slowly. Returns the hostile campaign's name and
    every dropped campaign name."""
    names = [f"drop{batch}-{i:02d}" for i in range(DROP_COUNT - 3)]
    hostile = f"drop{batch}-hostile"
    for name in names:
        write_yaml(lab.staging / f"{name}.yaml", dropped_campaign(name, rng))
    write_yaml(lab.staging / f"{hostile}.yaml", hostile_campaign(hostile))
    (lab.staging / f"drop{batch}-broken.yaml").write_text("name: [unclosed\ntype: survey\n")
    link = lab.staging / f"drop{batch}-link.yaml"
    link.unlink(missing_ok=True)
    link.symlink_to(lab.dir / "outside-secret.txt")
    for path in sorted(lab.staging.glob(f"drop{batch}-*.yaml")):
        os.replace(path, lab.campaigns / path.name)
    # One file written slowly, in two halves (issue 11, item 3).
    slow = f"drop{batch}-slow"
    text = yaml.safe_dump(dropped_campaign(slow, rng), sort_keys=False)
    target = lab.campaigns / f"{slow}.yaml"
    with target.open("w") as out:
        out.write(text[: len(text) // 2])
        out.flush()
        await asyncio.sleep(1.5)
        out.write(text[len(text) // 2 :])
    return hostile, [*names, hostile, slow]


async def edit_files(lab: ChaosLab, rng: random.Random, dropped: list[str]) -> str:
    """Three of: resize the campaign, break it then fix it, remove then restore it,
    churn the dropped files, an editor's save. The campaign file ends good."""
    variants = ["resize", "break_then_fix", "remove_then_restore", "churn_dropped", "editor_save"]
    chosen = rng.sample(variants, 3)
    path = lab.campaigns / f"{CHAOS}.yaml"
    good = yaml.safe_dump(chaos_campaign(), sort_keys=False)
    done = []
    for variant in chosen:
        if variant == "resize":
            resized = chaos_campaign(max_lines=rng.choice([8, 12, 16]), mode=rng.choice(["predictive", "ratio"]))
            _atomic_write(path, yaml.safe_dump(resized, sort_keys=False), lab.staging)
            await asyncio.sleep(2.0)
            good = yaml.safe_dump(resized, sort_keys=False)
        elif variant == "break_then_fix":
            path.write_text(good.replace("max_lines:", "max_lines: 5000\n  bogus_key:"))
            await asyncio.sleep(3.0)
            path.write_text(good)
        elif variant == "remove_then_restore":
            path.unlink(missing_ok=True)
            await asyncio.sleep(4.0)
            _atomic_write(path, good, lab.staging)
        elif variant == "churn_dropped":
            present = [n for n in dropped if (lab.campaigns / f"{n}.yaml").exists()]
            for name in rng.sample(present, min(10, len(present))):
                campaign = dropped_campaign(name, rng)
                write_yaml(lab.campaigns / f"{name}.yaml", campaign)
            present = [n for n in dropped if (lab.campaigns / f"{n}.yaml").exists()]
            for name in rng.sample(present, min(10, len(present))):
                (lab.campaigns / f"{name}.yaml").unlink(missing_ok=True)
        elif variant == "editor_save":
            (lab.campaigns / f".{CHAOS}.yaml.swp").write_text("\0\1 vim swap")
            (lab.campaigns / f"{CHAOS}.yaml~").write_text(good)
            with path.open("w") as out:
                out.write(good[: len(good) // 3])
                out.flush()
                await asyncio.sleep(1.0)
                out.write(good[len(good) // 3 :])
            (lab.campaigns / f".{CHAOS}.yaml.swp").unlink(missing_ok=True)
        done.append(variant)
    return ", ".join(done)
