"""The fixed vocabularies of FER-2013: emotions in the dataset's own order, and usages."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
TRAINING = "Training"
TEST_USAGES: tuple[str, ...] = ("PublicTest", "PrivateTest")
IMAGE_SIDE = 48


def emotion_index(name: str) -> int:
    """Index of an emotion name; ValueError naming the allowed names otherwise."""
    try:
        return EMOTIONS.index(name.strip().lower())
    except ValueError:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}") from None
