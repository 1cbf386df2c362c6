"""The vocabularies: emotions (FER-2013's seven by default, or a dataset's own label set), usages,
and the rules that turn a dataset's folder names or CSV label values, and `--labels`, into its label set.

A label set is a tuple of lower-case names; a sample's label is an index into it. FER-2013's seven
come first in their own order whenever the data holds no list of its own, so FER-2013 keeps its
indices (and every cache and file) while a dataset with more classes (AffectNet's contempt) appends
them, sorted by name. `--labels` names them: a list (`angry,...,neutral,contempt`: order = index) or
a mapping from the data's names to emotions (`anger=angry,happiness=happy,...`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
TRAINING = "Training"
TEST_USAGES: tuple[str, ...] = ("PublicTest", "PrivateTest")
IMAGE_SIDE = 48
# More classes than this is not a facial-expression dataset (or a label column read wrongly): every
# page, confusion matrix and model head is laid out for a handful of emotions.
MAX_CLASSES = 20
EXTRA_CLASS_PREFIX = "class_"  # a CSV's integer label 7 and up, unless --labels names it
LABEL_NAME = re.compile(r"\w[\w -]{0,38}\w|\w")  # letters, digits, _, - and inner spaces: safe in files and columns


def emotion_index(name: str, emotions: Sequence[str] = EMOTIONS) -> int:
    """Index of an emotion name in a label set; ValueError naming the allowed names otherwise."""
    try:
        return tuple(emotions).index(str(name).strip().lower())
    except ValueError:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(emotions)}") from None


@dataclass(frozen=True)
class LabelChoice:
    """What `--labels` says: a list of names (order = index), or a mapping from the data's folder names or
    CSV values to names (an entry without `=` keeps its name)."""

    names: tuple[str, ...] = ()
    mapping: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """The option as typed, in one canonical spelling (cache keys, the workspace's record)."""
        if self.names:
            return ",".join(self.names)
        return ",".join(key if key == name else f"{key}={name}" for key, name in self.mapping)


def parse_labels_option(text: str) -> LabelChoice:
    """`--labels` as a LabelChoice; ValueError (one line) on an empty entry, a bad name or a repeated one."""
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise ValueError("--labels is empty; give the names in order (angry,disgust,...) or a mapping (anger=angry,...)")
    if not all(items):
        raise ValueError(f"--labels {text!r} has an empty entry (two commas in a row, or one at an end)")
    if not any("=" in item for item in items):
        names = tuple(check_label_name(item, "--labels") for item in items)
        _refuse_repeats(names, "--labels names {name!r} twice; each index needs a name of its own")
        check_class_count(names, "--labels")
        return LabelChoice(names=names)
    pairs = []
    for item in items:
        key, _, name = item.partition("=") if "=" in item else (item, "", item)
        if not key.strip() or not name.strip():
            raise ValueError(f"--labels entry {item!r} is not FOLDER=EMOTION")
        pairs.append((key.strip().lower(), check_label_name(name, "--labels")))
    _refuse_repeats([key for key, _ in pairs], "--labels maps {name!r} twice")
    _refuse_repeats([name for _, name in pairs], "--labels maps two folders to {name!r}; give each its own name "
                                                 "(merging classes is an edit, not a load option)")
    return LabelChoice(mapping=tuple(pairs))


def check_label_name(name: str, where: str) -> str:
    """`name` in lower case, or ValueError: names become folder names, CSV columns and UI text."""
    lowered = str(name).strip().lower()
    if not LABEL_NAME.fullmatch(lowered):
        raise ValueError(f"{where}: {name!r} cannot be an emotion name (letters, digits, _ and -, up to 40 "
                         f"characters)")
    return lowered


def check_class_count(emotions: Sequence[str], where: str) -> None:
    if len(emotions) > MAX_CLASSES:
        shown = ", ".join(list(emotions)[:MAX_CLASSES + 1])
        raise ValueError(f"{where}: {len(emotions)} classes ({shown}, ...), more than {MAX_CLASSES}; FER Audit is "
                         f"made for facial expressions (check the folders, or the label column)")


def _refuse_repeats(values: Sequence[str], message: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(message.format(name=value))
        seen.add(value)


def label_set_of_names(found: Iterable[str], choice: LabelChoice | None, source: str,
                       kind: str = "emotion folder") -> tuple[str, ...]:
    """The label set of a dataset whose samples carry names (emotion folders); a name's index in it is
    that of `name_of_found(name, choice)`. Default: FER-2013's seven, then the other names, sorted."""
    found = sorted({name.lower() for name in found})
    if choice is not None and choice.names:
        missing = [name for name in found if name not in choice.names]
        if missing:
            raise ValueError(f"{source}: {kind} {missing[0]!r} is not in --labels ({', '.join(choice.names)}); "
                             f"add it, or map it (--labels {missing[0]}=NAME,...)")
        return choice.names
    if choice is not None:
        mapped = dict(choice.mapping)
        unmapped = [name for name in found if name not in mapped]
        if unmapped:
            raise ValueError(f"{source}: --labels leaves out {kind} {unmapped[0]!r}; map every {kind} "
                             f"(found: {', '.join(found)})")
        absent = [key for key in mapped if key not in found]
        if absent:
            raise ValueError(f"{source}: --labels maps {absent[0]!r}, which is no {kind} here "
                             f"(found: {', '.join(found)})")
        names = mapped.values()
    else:
        names = [check_label_name(name, f"{source}: emotion folder (give it a name with --labels "
                                        f"{name}=NAME)") for name in found]
    emotions = EMOTIONS + tuple(sorted(set(names) - set(EMOTIONS)))
    check_class_count(emotions, source)
    return emotions


def name_of_found(name: str, choice: LabelChoice | None) -> str:
    """The emotion a folder name (or CSV value) stands for under `choice`."""
    key = name.lower()
    return dict(choice.mapping).get(key, key) if choice is not None and choice.mapping else key


def label_set_of_integers(values: Iterable[int], choice: LabelChoice | None,
                          source: str) -> tuple[tuple[str, ...], dict[int, int]]:
    """The label set of a CSV's integer labels and each value's index in it. Default: K = the largest
    value + 1 classes, FER-2013's seven then `class_7`, ...; a list names the indices (a value past its
    end is then a bad row: it has no index in the result); a mapping names every value found."""
    found = sorted(set(int(value) for value in values))
    if choice is not None and choice.names:
        return choice.names, {value: value for value in found if value < len(choice.names)}
    if choice is not None:
        names = label_set_of_names([str(value) for value in found], choice, source, kind="label value")
        return names, {value: names.index(name_of_found(str(value), choice)) for value in found}
    count = max([len(EMOTIONS), *(value + 1 for value in found)])
    if count > MAX_CLASSES:
        raise ValueError(f"{source}: label value {found[-1]} means {count} classes, more than {MAX_CLASSES}; "
                         f"FER Audit is made for facial expressions (check the emotion column)")
    emotions = EMOTIONS + tuple(f"{EXTRA_CLASS_PREFIX}{index}" for index in range(len(EMOTIONS), count))
    return emotions, {value: value for value in found}
