"""Quality metrics of generated samples, as pure functions of point sets."""
