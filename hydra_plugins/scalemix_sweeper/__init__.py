"""scalemix's Hydra Sweeper: Hydra discovers it in the `hydra_plugins` namespace package."""
