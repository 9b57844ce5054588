"""bench/run as a module, for the benchmarks built on its context and loops (its file name has
no .py, so it is loaded from its path)."""
import importlib.util
import os
from importlib.machinery import SourceFileLoader

RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run")


def load_run():
    loader = SourceFileLoader("bench_run", RUN)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module
