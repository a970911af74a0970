"""Synthetic MMSA data with the shapes of CMU-MOSI / CMU-MOSEI and a real, learnable signal.

`make_synthetic(kind)` returns a dict in the exact MMSA pickle layout, so it goes through the same
validation and loading path as a real file; ``load_dataset("synthetic-mosi")`` is the usual way in.
Everything is drawn from a NumPy ``Generator`` seeded by ``seed`` (each split from its own child
seed, so one split's size never changes another split's samples).

Generative process, per sample i of video k (constants below, `_GEN`):

| component | drawn as | carried by |
|---|---|---|
| s_t = v_t / 1.6 | v_t = valence of a template sentence over real sentiment words | `raw_text`, `text_bert` |
| s_a ~ N(0, 1) | each valid frame: s_a u_a (1 + 0.25 e) + speaker b_k + N(0, I) | `audio` (+ a few -inf) |
| s_v ~ N(0, 1) | the same along its own direction u_v | `vision` |
| z | 0.8 s_t + 0.6 s_a + 0.6 s_v + 0.6 s_a s_v + N(0, 0.3^2) | - |
| label | mean of 3-5 votes clip(round(clip(1.1 z, -3, 3) + N(0, 0.35^2)), -3, 3) | `regression_labels` |

- Sentences: "the acting was really great", "i hated the ending", "the plot was not bad": an
  adjective/verb of base valence in {-3..3}, times 1.3 with an intensifier, 0.6 with a softener,
  -0.5 with a negator (so a bag of words cannot read it all; a pretrained encoder can).
- Frames: u_a, u_v are fixed unit directions; every feature then gets a fixed scale and offset
  (raw, un-normalised units, like openSMILE/COVAREP); b_k is a per-video speaker offset.
- Labels are means of integer votes: multiples of 1/3, 1/4, 1/5, so exact 0s and x.5 occur.

So text alone explains part of the score (corr(s_t, y) ~ 0.6), acoustic and visual streams add
their own linear parts, and the s_a·s_v part is visible only to a model that sees both. Padded
lengths are aligned-50 by default (`lengths=(L_a, L_v)` for others), valid lengths vary (about a
quarter of samples are full length), frames are front-aligned (right padding) with zero padding.
There is no pre-extracted `text` feature array (the loader does not need it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["make_synthetic", "SYNTHETIC_KINDS", "SPLIT_SIZES", "FEATURE_WIDTHS", "TEXT_LEN"]

SYNTHETIC_KINDS: tuple[str, ...] = ("mosi", "mosei")
# (train, valid, test). MOSI: CMU-MOSI's 1284 training samples, but validation 1536 and test 1024
# instead of its 229 / 686: at those sizes the split moves the difference between two good
# configurations less than the training seed does (measured: 0.73 % vs 0.79 % on validation, 0.90 %
# vs 1.09 % on test; at 229 / 686 the split decided a ranking more than the seed), for +22 % time
# per epoch of the quickstart's trial (3.03 -> 3.70 s; benchmarks/bench_split_cost.py). MOSEI's real
# sizes are already large enough.
SPLIT_SIZES: dict[str, tuple[int, int, int]] = {"mosi": (1284, 1536, 1024), "mosei": (16326, 1871, 4659)}
FEATURE_WIDTHS: dict[str, tuple[int, int]] = {"mosi": (5, 20), "mosei": (74, 35)}  # (audio, vision)
TEXT_LEN = 50  # MMSA text_bert length
_SPLITS = ("train", "valid", "test")
_KIND_CODE = {"mosi": 1, "mosei": 2}
_CLIPS_PER_VIDEO = {"mosi": 23, "mosei": 7}  # mean clips per video in the real datasets

_GEN = dict(
    w_t=0.8, w_a=0.6, w_v=0.6, w_av=0.6, noise=0.3,  # label weights (standardised components)
    scale=1.1,  # latent -> score scale (MOSI label std ~1.5)
    text_scale=1.6,  # s_t = valence / text_scale (unit variance)
    valence_std=1.7,  # std of the target valence before it is realised as words
    frame_noise=1.0, frame_jitter=0.25, speaker_std=0.3,
    annotators=(3, 4, 5), annotator_p=(0.25, 0.35, 0.4), annotator_noise=0.35,
    full_length_p=0.25, min_length_frac=0.35, neg_inf_p=0.002,
)

# --- lexicon: real English sentiment words (a pretrained encoder can read them) ---------------------
_ADJ: dict[int, tuple[str, ...]] = {
    3: ("amazing", "fantastic", "brilliant", "wonderful", "excellent", "awesome", "perfect"),
    2: ("great", "enjoyable", "impressive", "beautiful", "lovely", "fun"),
    1: ("good", "nice", "decent", "pleasant", "solid", "cute"),
    0: ("okay", "average", "ordinary", "alright", "normal", "typical"),
    -1: ("mediocre", "dull", "weak", "slow", "bland", "forgettable"),
    -2: ("bad", "boring", "disappointing", "annoying", "poor", "stupid"),
    -3: ("terrible", "awful", "horrible", "dreadful", "pathetic", "unbearable"),
}
_VERB: dict[int, tuple[tuple[str, str], ...]] = {  # (past, base) for "i loved" / "i did not love"
    3: (("loved", "love"), ("adored", "adore")),
    2: (("enjoyed", "enjoy"), ("liked", "like")),
    -2: (("disliked", "dislike"),),
    -3: (("hated", "hate"), ("despised", "despise")),
}
_MODS: dict[str, tuple[float, tuple[str, ...]]] = {
    "plain": (1.0, ("",)),
    "intensify": (1.3, ("really", "very", "so", "extremely", "truly", "incredibly")),
    "soften": (0.6, ("kind of", "somewhat", "a little", "slightly", "fairly")),
    "negate": (-0.5, ("not", "not really")),
}
_ASPECTS = ("the movie", "the film", "the acting", "the plot", "the story", "the ending", "the music",
            "the characters", "the dialogue", "the effects", "this part", "the whole thing")
_COPULAS = ("was", "is", "felt", "seemed")
_OPENERS = ("", "", "", "honestly", "overall", "well", "i think", "to be honest", "so", "um",
            "basically", "i mean")
_CLOSERS = ("", "", "", "to me", "in my opinion", "if you ask me", "this time", "at the end")
_NEUTRAL = ("i watched {a} last weekend", "we talked about {a} with friends", "i saw {a} in the theater",
            "{a} was about two hours", "i remember {a} from the trailer")


@lru_cache(maxsize=1)
def _forms() -> tuple[np.ndarray, list[tuple[str, int, str]]]:
    """Every (template, base, modifier) form and its valence: ``(values, forms)``."""
    forms: list[tuple[str, int, str]] = [("neutral", 0, "plain"), ("adj", 0, "plain")]
    for base in (-3, -2, -1, 1, 2, 3):
        for mod in _MODS:
            forms.append(("adj", base, mod))
            if base in _VERB and mod in ("plain", "intensify", "negate"):
                forms.append(("verb", base, mod))
    values = np.array([base * _MODS[mod][0] for _, base, mod in forms])
    return values, forms


@lru_cache(maxsize=1)
def _vocab_file() -> str:
    from mmsa_core.models.text_encoder import resolve_text_encoder

    return str(resolve_text_encoder("minilm").tokenizer_dir / "vocab.txt")


@lru_cache(maxsize=4096)
def _word_ids(word: str) -> tuple[int, ...]:
    from mmsa_core.data.tokenize import wordpiece_ids

    return tuple(wordpiece_ids(word, _vocab_file()))


def _sentences(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """n transcripts and their valences."""
    values, forms = _forms()
    target = rng.normal(0.0, _GEN["valence_std"], size=n)
    dist = np.abs(target[:, None] - values[None, :])
    tie_break = rng.random((n, len(values))) * 1e-6  # random choice among forms of equal valence
    choice = np.argmin(dist + tie_break, axis=1)
    picks = rng.integers(0, 1 << 30, size=(n, 6))  # word choices
    texts: list[str] = []
    for i in range(n):
        template, base, mod = forms[choice[i]]
        p = picks[i]
        aspect = _ASPECTS[p[0] % len(_ASPECTS)]
        opener = _OPENERS[p[1] % len(_OPENERS)]
        closer = _CLOSERS[p[2] % len(_CLOSERS)]
        modifier = _MODS[mod][1][p[3] % len(_MODS[mod][1])]
        if template == "neutral":
            core = _NEUTRAL[p[4] % len(_NEUTRAL)].format(a=aspect)
        elif template == "verb":
            past, present = _VERB[base][p[4] % len(_VERB[base])]
            core = (f"i did {modifier} {present} {aspect}" if mod == "negate"
                    else f"i {modifier} {past} {aspect}")
        else:
            adj = _ADJ[base][p[4] % len(_ADJ[base])]
            core = f"{aspect} {_COPULAS[p[5] % len(_COPULAS)]} {modifier} {adj}"
        texts.append(" ".join(f"{opener} {core} {closer}".split()))
    return texts, values[choice]


def _token_arrays(texts: Sequence[str]) -> np.ndarray:
    """(N, 3, TEXT_LEN) float32 like MMSA's `text_bert`: ids, mask, type ids (uncased WordPiece)."""
    from mmsa_core.data.tokenize import CLS_ID, SEP_ID

    out = np.zeros((len(texts), 3, TEXT_LEN), dtype=np.float32)
    for i, t in enumerate(texts):
        pieces = [i for w in t.split() for i in _word_ids(w)]
        ids = (CLS_ID, *pieces[: TEXT_LEN - 2], SEP_ID)
        out[i, 0, : len(ids)] = ids
        out[i, 1, : len(ids)] = 1.0
    return out


def _stream_constants(kind: str, width: int, stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed (seed-independent) direction, raw scale and offset of one stream of one kind."""
    rng = np.random.default_rng([7919, _KIND_CODE[kind], stream, width])
    direction = rng.normal(size=width)
    direction /= np.linalg.norm(direction)
    scale = np.exp(rng.uniform(np.log(0.3), np.log(5.0), size=width))
    offset = rng.uniform(-2.0, 2.0, size=width)
    return direction.astype(np.float32), scale.astype(np.float32), offset.astype(np.float32)


def _frames(rng: np.random.Generator, latent: np.ndarray, lengths: np.ndarray, video: np.ndarray,
            padded: int, consts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """(N, padded, d) float32 frames carrying ``latent`` along a direction; zero padding at the end."""
    direction, scale, offset = consts
    n, d = latent.shape[0], direction.shape[0]
    speakers = rng.normal(0.0, _GEN["speaker_std"], size=(int(video.max()) + 1 if n else 0, d))
    x = rng.standard_normal((n, padded, d), dtype=np.float32)  # in-place from here: big arrays
    x *= np.float32(_GEN["frame_noise"])
    gain = rng.standard_normal((n, padded), dtype=np.float32)
    gain *= np.float32(_GEN["frame_jitter"])
    gain += np.float32(1.0)
    gain *= latent.astype(np.float32)[:, None]  # (N, L) signal strength per frame
    x += gain[:, :, None] * direction[None, None, :]
    x += speakers[video].astype(np.float32)[:, None, :]
    x *= scale
    x += offset
    x *= (np.arange(padded)[None, :] < lengths[:, None])[:, :, None]
    return x


def _labels(rng: np.random.Generator, s_t: np.ndarray, s_a: np.ndarray, s_v: np.ndarray) -> np.ndarray:
    g = _GEN
    z = g["w_t"] * s_t + g["w_a"] * s_a + g["w_v"] * s_v + g["w_av"] * s_a * s_v
    z += rng.normal(0.0, g["noise"], size=z.shape)
    y_star = np.clip(g["scale"] * z, -3.0, 3.0)
    k = rng.choice(np.asarray(g["annotators"]), p=np.asarray(g["annotator_p"]), size=z.shape)
    kmax = max(g["annotators"])
    votes = np.clip(np.round(y_star[:, None] + rng.normal(0.0, g["annotator_noise"], size=(z.size, kmax))), -3, 3)
    votes *= np.arange(kmax)[None, :] < k[:, None]
    return (votes.sum(axis=1) / k).astype(np.float32)


def _split(kind: str, n: int, rng: np.random.Generator, first_video: int, padded: tuple[int, int]) -> dict:
    texts, valence = _sentences(rng, n)
    s_t = valence / _GEN["text_scale"]
    s_a = rng.standard_normal(n)
    s_v = rng.standard_normal(n)
    y = _labels(rng, s_t, s_a, s_v)

    # videos of ~C clips each; clip ids 1.. within a video (MMSA "video$_$clip")
    per_video = 1 + rng.poisson(_CLIPS_PER_VIDEO[kind] - 1, size=max(1, n))
    video = np.repeat(np.arange(per_video.size), per_video)[:n]
    clip = np.arange(n) - np.searchsorted(video, video) + 1 if n else np.zeros(0, int)

    frac = rng.uniform(_GEN["min_length_frac"], 1.0, size=n)
    frac[rng.random(n) < _GEN["full_length_p"]] = 1.0
    len_a = np.clip(np.round(frac * padded[0]), 1, padded[0]).astype(np.int64)
    len_v = np.clip(np.round(frac * padded[1]), 1, padded[1]).astype(np.int64)

    d_a, d_v = FEATURE_WIDTHS[kind]
    audio = _frames(rng, s_a, len_a, video, padded[0], _stream_constants(kind, d_a, 0))
    vision = _frames(rng, s_v, len_v, video, padded[1], _stream_constants(kind, d_v, 1))
    # COVAREP-style -inf entries in a few valid acoustic frames (the loader sets them to 0)
    valid = np.arange(padded[0])[None, :] < len_a[:, None]
    hit = valid & (rng.random(valid.shape) < _GEN["neg_inf_p"])
    audio[hit, rng.integers(0, d_a)] = -np.inf

    annotations = np.where(y > 0, "Positive", np.where(y < 0, "Negative", "Neutral"))
    return {
        "id": [f"synthvid{first_video + v}$_${c}" for v, c in zip(video.tolist(), clip.tolist())],
        "raw_text": texts,
        "text_bert": _token_arrays(texts),
        "audio": audio,
        "vision": vision,
        "audio_lengths": len_a.tolist(),
        "vision_lengths": len_v.tolist(),
        "annotations": annotations.tolist(),
        "regression_labels": y,
        "classification_labels": (np.sign(y) + 1).astype(np.float32),  # 0 neg, 1 neu, 2 pos
        "_videos": int(video.max()) + 1 if n else 0,
    }


def make_synthetic(kind: str = "mosi", *, seed: int = 0, sizes: Sequence[int] | None = None,
                   lengths: int | Sequence[int] | None = None) -> dict[str, dict]:
    """A synthetic dataset in the MMSA pickle layout (see the module docstring for the process).

    Args:
        kind: ``"mosi"`` (audio 5, visual 20) or ``"mosei"`` (audio 74, visual 35).
        seed: all randomness comes from ``np.random.default_rng`` children of this seed.
        sizes: (train, valid, test) sample counts; None, or a 0 entry, takes the default split size
            (`SPLIT_SIZES`: MOSI 1284/1536/1024, MOSEI 16326/1871/4659).
        lengths: padded frame counts ``(L_a, L_v)`` (an int sets both); default aligned-50.
    """
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"synthetic kind {kind!r} is not one of {list(SYNTHETIC_KINDS)}")
    defaults = SPLIT_SIZES[kind]
    if sizes is None:
        sizes = defaults
    if len(sizes) != 3 or any(int(s) != s or s < 0 for s in sizes):
        raise ValueError(f"sizes={tuple(sizes)!r} must be three non-negative integers (train, valid, test)")
    sizes = tuple(int(s) if s else d for s, d in zip(sizes, defaults))
    if lengths is None:
        padded = (TEXT_LEN, TEXT_LEN)
    elif isinstance(lengths, (int, np.integer)):
        padded = (int(lengths), int(lengths))
    else:
        padded = tuple(int(x) for x in lengths)  # type: ignore[assignment]
    if len(padded) != 2 or min(padded) < 1:
        raise ValueError(f"lengths={lengths!r} must be a positive int or (L_audio, L_vision)")

    children = np.random.SeedSequence([int(seed), _KIND_CODE[kind]]).spawn(len(_SPLITS))
    out: dict[str, dict] = {}
    first_video = 0
    for split, n, child in zip(_SPLITS, sizes, children):
        fields = _split(kind, n, np.random.default_rng(child), first_video, padded)
        first_video += fields.pop("_videos")
        out[split] = fields
    return out
