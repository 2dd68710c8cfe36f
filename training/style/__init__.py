"""Style-based networks (Karras et al. 2019, 2020): a mapping network z [, c] -> w and a synthesis
network that draws an image from w, one copy per layer; the residual D they are trained against."""
