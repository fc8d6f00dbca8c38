# Solution: notebook 01, exercise 2
import math


def x0_from_v(latents, v, sigma):
    # EDM with v-prediction (sigma_data = 1): x0 = c_skip * z + c_out * v
    c_skip = 1 / (sigma**2 + 1)
    c_out = -sigma / math.sqrt(sigma**2 + 1)
    return c_skip * latents + c_out * v
