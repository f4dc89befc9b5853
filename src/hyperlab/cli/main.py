"""The whole `lab` command line: every command group, in the order `lab --help` lists them."""

from __future__ import annotations

# Each module adds its commands to `app` when imported; the order of these lines is the order of `lab --help`.
from hyperlab.cli import labs  # list, validate, plan, schema, diagram
from hyperlab.cli import deploy  # up, status, down, reset, exec, console
from hyperlab.cli import doctor  # doctor
from hyperlab.cli import grading  # check, grade, solve
from hyperlab.cli import acceptance  # acceptance
from hyperlab.cli import klass  # capacity, and the class group
from hyperlab.cli.app import app
from hyperlab.cli.checkpoints import checkpoint_app
from hyperlab.cli.image import image_app
from hyperlab.cli.klass import class_app

app.add_typer(image_app, name="image", help="Build and list golden images.")
app.add_typer(checkpoint_app, name="checkpoint", help="Save, list and delete an instance's checkpoints.")
app.add_typer(class_app, name="class", help="A class over several hosts (hosts.yaml): plan, up, status, check, down.")

__all__ = ["acceptance", "app", "deploy", "doctor", "grading", "klass", "labs"]
