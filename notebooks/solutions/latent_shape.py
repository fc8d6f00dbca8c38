# Solution: notebook 01, exercise 1
def latent_shape(height, width, num_frames):
    # SVD's VAE halves the size three times (a factor 8) and keeps 4 channels; one latent per frame
    return (num_frames, 4, height // 8, width // 8)
