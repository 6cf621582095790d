"""Recipes: one module per paper (its profiles, data building, model + loss, evaluation), returning records."""
