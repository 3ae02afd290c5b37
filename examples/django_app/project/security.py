"""The example's WebConfig: the demo one, and the live consumer applies mask and tokenize."""

import attrs

from examples.demo_setup import build_config
from zerotrust.web import WebConfig


def config() -> WebConfig:
    return attrs.evolve(build_config(), websocket_handled_obligations={"mask", "tokenize"})
