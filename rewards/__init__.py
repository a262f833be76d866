"""Reward specs: turn recorded reward channels into per-turn scalar rewards."""
