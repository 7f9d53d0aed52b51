"""scalemix harness: RunSpec -> trained model -> run directory. `harness.run` is harness.train.run."""


def __getattr__(name):  # lazy: importing harness.spec must not import torch and the model zoo
    if name == "run":
        from harness.train import run
        return run
    raise AttributeError(name)
