"""What journeys achieve: engagement, conversions, experiments and the plan report."""
