"""Difficulty presets of the synthetic world, one knob group per concern.

``flat`` is the original world (flat colours on a near-white background, rendered by
``shapes.render``); it has no entry here. The others draw every scene from a ``Preset``:

- background: procedural textures (``backgrounds.py``), their contrast and colourfulness,
  and the number of small clutter marks that are not objects;
- objects: fill patterns, shading, outlines, colour jitter, sizes, rotation, how many,
  how often one is placed over another and how much of it must stay visible, and how often
  an object shares its category with another one of the scene (a distractor);
- degradations (``degrade.py``): lighting, contrast, blur, noise and JPEG compression.

Ranges ``(lo, hi)`` are sampled uniformly per scene (per object for object knobs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

DIFFICULTIES = ("flat", "easy", "default", "crowded", "hard")


@dataclass(frozen=True)
class Background:
    """Background knobs of a preset."""

    backgrounds: tuple[tuple[str, float], ...]  # (kind, weight): noise | stripes | gradient
    background_contrast: tuple[float, float]  # spread between a background's two colours (0..1)
    background_saturation: float  # colourfulness of background colours (0 grey .. 1 full)
    clutter: tuple[int, int]  # small non-object marks per scene
    clutter_size: float  # largest mark side, as a fraction of the image side


@dataclass(frozen=True)
class Objects:
    """Object knobs of a preset."""

    min_objects: int
    max_objects: int
    patterns: tuple[str, ...]  # fill patterns (the ``texture`` attribute word)
    shading: float  # brightness change across an object (lighting), at most
    outline: float  # chance of a dark outline
    colour_jitter: float  # per-object RGB jitter, in 0..255 units
    small: tuple[float, float]  # box side of a small object, fraction of the image side
    large: tuple[float, float]  # box side of a large object
    rotation: float  # largest rotation, degrees
    occlusion: float  # chance an object is placed over an earlier one
    min_visible: float  # least visible fraction of an occluded object
    distractor: float  # chance an object reuses a category already in the scene


@dataclass(frozen=True)
class Degradation:
    """Image degradation knobs of a preset (``degrade.py``)."""

    gain: tuple[float, float]  # lighting: multiply brightness
    gamma: tuple[float, float]  # lighting: gamma curve
    contrast: tuple[float, float]  # contrast about the mean
    blur: tuple[float, float]  # Gaussian blur sigma, pixels
    noise: tuple[float, float]  # Gaussian noise std, fraction of 255
    jpeg: tuple[int, int]  # JPEG quality range; (0, 0): no compression


@dataclass(frozen=True)
class Preset:
    """One difficulty preset: its background, object and degradation knobs."""

    background: Background
    objects: Objects
    degradation: Degradation

    def as_dict(self) -> dict:
        d = {**asdict(self.background), **asdict(self.objects), **asdict(self.degradation)}
        d["backgrounds"] = [list(b) for b in self.background.backgrounds]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


PATTERNS = ("plain", "striped", "dotted", "checked")

PRESETS: dict[str, Preset] = {
    "easy": Preset(
        background=Background(
            backgrounds=(("gradient", 0.5), ("noise", 0.5)),
            background_contrast=(0.1, 0.25),
            background_saturation=0.25,
            clutter=(0, 6),
            clutter_size=0.03,
        ),
        objects=Objects(
            min_objects=2,
            max_objects=6,
            patterns=("plain", "striped"),
            shading=0.15,
            outline=0.2,
            colour_jitter=6.0,
            small=(0.11, 0.15),
            large=(0.22, 0.3),
            rotation=15.0,
            occlusion=0.15,
            min_visible=0.6,
            distractor=0.3,
        ),
        degradation=Degradation(
            gain=(0.9, 1.1),
            gamma=(0.9, 1.1),
            contrast=(0.9, 1.05),
            blur=(0.0, 0.4),
            noise=(0.0, 0.02),
            jpeg=(0, 0),
        ),
    ),
    # the default job's world: hard for connected components, learnable in 10 CPU minutes
    "default": Preset(
        background=Background(
            backgrounds=(("noise", 0.55), ("stripes", 0.35), ("gradient", 0.1)),
            background_contrast=(0.45, 0.75),
            background_saturation=0.45,
            clutter=(8, 20),
            clutter_size=0.05,
        ),
        objects=Objects(
            min_objects=2,
            max_objects=5,
            patterns=PATTERNS,
            shading=0.25,
            outline=0.3,
            colour_jitter=10.0,
            small=(0.17, 0.23),
            large=(0.32, 0.42),
            rotation=30.0,
            occlusion=0.2,
            min_visible=0.6,
            distractor=0.4,
        ),
        degradation=Degradation(
            gain=(0.85, 1.1),
            gamma=(0.85, 1.15),
            contrast=(0.85, 1.05),
            blur=(0.0, 0.6),
            noise=(0.01, 0.03),
            jpeg=(60, 95),
        ),
    ),
    "hard": Preset(
        background=Background(
            backgrounds=(("noise", 0.4), ("stripes", 0.35), ("gradient", 0.25)),
            background_contrast=(0.3, 0.7),
            background_saturation=0.6,
            clutter=(16, 48),
            clutter_size=0.06,
        ),
        objects=Objects(
            min_objects=4,
            max_objects=10,
            patterns=PATTERNS,
            shading=0.45,
            outline=0.5,
            colour_jitter=20.0,
            small=(0.06, 0.11),
            large=(0.16, 0.28),
            rotation=90.0,
            occlusion=0.5,
            min_visible=0.3,
            distractor=0.55,
        ),
        degradation=Degradation(
            gain=(0.65, 1.25),
            gamma=(0.7, 1.4),
            contrast=(0.6, 1.15),
            blur=(0.3, 1.4),
            noise=(0.02, 0.07),
            jpeg=(20, 70),
        ),
    ),
}

# the first realistic default (until 2026-12-03): the same look with 3-7 smaller objects on a
# slightly calmer background. The tiny model learns it about three times slower (README).
PRESETS["crowded"] = replace(
    PRESETS["default"],
    background=replace(
        PRESETS["default"].background,
        background_contrast=(0.4, 0.7),
        clutter=(6, 16),
        clutter_size=0.04,
    ),
    objects=replace(
        PRESETS["default"].objects,
        min_objects=3,
        max_objects=7,
        small=(0.11, 0.16),
        large=(0.22, 0.3),
    ),
)
