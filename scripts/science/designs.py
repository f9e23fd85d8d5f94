"""Candidate benchmark designs (SynthConfig overrides) compared during calibration."""

COMMON = {"videos": 600, "images": 0}

DESIGNS = {
    # the SynthConfig defaults as written by the data layer
    "default": {**COMMON},
    # round-2 calibration: coherent motion, flat background, no nuisances (random init ~90%)
    "plain": {
        **COMMON,
        "num_objects": 3,
        "num_distractors": 0,
        "camera_jitter": 0.0,
        "brightness_jitter": 0.0,
        "colour_jitter": 0.0,
        "pixel_noise": 0.0,
    },
    # more distractors moving as other classes
    "distract3": {**COMMON, "num_objects": 2, "num_distractors": 3},
    # rotation sense (cw / ccw) with a translation nuisance
    "rotation": {
        **COMMON,
        "motion": "rotation",
        "num_objects": 2,
        "num_distractors": 1,
        "shapes": ("square", "triangle", "cross", "diamond"),
        "rotation_drift": (0.0, 0.04),
    },
    # camera pan over a textured background: the label is motion relative to the scene
    "pan": {
        **COMMON,
        "background": "texture",
        "background_contrast": 0.15,
        "camera_pan": 0.05,
        "num_distractors": 1,
    },
    # no per-clip photometric nuisance (fixed background level, no gain/colour/noise/shake):
    # the global scalars that a short V-JEPA run otherwise learns first (rank-4 features)
    "clean": {
        **COMMON,
        "background_level": (0.5, 0.5),
        "camera_jitter": 0.0,
        "brightness_jitter": 0.0,
        "colour_jitter": 0.0,
        "pixel_noise": 0.0,
    },
    # the earlier round's object-dominated clips: 3 objects moving together, fixed flat background
    "objects3": {
        **COMMON,
        "num_objects": 3,
        "num_distractors": 0,
        "background_level": (0.5, 0.5),
        "camera_jitter": 0.0,
        "brightness_jitter": 0.0,
        "colour_jitter": 0.0,
        "pixel_noise": 0.0,
    },
}
