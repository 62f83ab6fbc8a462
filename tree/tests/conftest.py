"""Shared fixtures: the packaged example data."""

from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def mails() -> pd.DataFrame:
    """The seed's ten mails: label, length, image, bitcoin."""
    return pd.read_csv(DATA / "mails.csv")


@pytest.fixture
def tennis() -> pd.DataFrame:
    """Quinlan's 14 Saturday mornings: outlook, temperature, humidity, wind, play."""
    return pd.read_csv(DATA / "play_tennis.csv")
