# Solution: notebook 03, exercise 2
def my_one_box_loss(features, box0, boxj, frame, weights):
    x0, y0, x1, y1 = box0
    target = features[0, :, y0:y1, x0:x1].detach()  # (C, h, w): frame 0 is the target, no gradient
    x0, y0, x1, y1 = boxj
    squared = (features[frame, :, y0:y1, x0:x1] - target).pow(2).mean(0)  # (h, w): mean over channels
    return (weights * squared).sum() / weights.sum()
