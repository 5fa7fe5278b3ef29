"""``python -m tests.moto_rules -H 127.0.0.1 -p PORT``: moto's server, with the rules installed first."""

from moto.server import main

from tests.moto_rules import install

install()
main()
