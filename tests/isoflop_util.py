"""What the approach-2 test files share: a law with alpha != beta, the bench folder (public data, study scripts),
and approach 2 fitted quietly without a bootstrap unless a config says otherwise."""
import os
import warnings
from pathlib import Path

from analysis.laws import approach2
from analysis.laws.common import FitConfig
from analysis.synthetic import KnownLaw

os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")
ASYM = KnownLaw(E=1.8, A=1500.0, B=400.0, alpha=0.50, beta=0.25)
BENCH = Path(__file__).resolve().parents[1] / "bench"


def fit(t, cfg=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return approach2.fit(t, cfg or FitConfig(n_bootstrap=0), **kw)
