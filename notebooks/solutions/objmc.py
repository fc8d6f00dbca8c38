# Solution: notebook 06, exercise
import numpy as np


def objmc(tracked, target):
    # tracked, target: (F, 2) centres in pixels; frame 0 is given, so frames 1..F-1
    return np.linalg.norm(np.asarray(tracked)[1:] - np.asarray(target)[1:], axis=-1).mean()
