import os

import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


@pytest.fixture(scope="session")
def reference():
    data = np.load(fixture("reference.npz"))
    return data["images"], data["labels"], data["probabilities"], [str(n) for n in data["names"]]
