"""Airflow 2.11's connection-form plumbing, built from the declarative field specs."""

from __future__ import annotations

from typing import Any


def form_widgets(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """WTForms fields for Airflow 2.11's connection form (Airflow >= 3.2 reads ``conn-fields`` instead)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextAreaFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, spec in fields.items():
        fmt = spec["schema"].get("format")
        if fmt == "password":
            field_class, widget = PasswordField, BS3PasswordFieldWidget()
        elif fmt == "multiline":
            field_class, widget = StringField, BS3TextAreaFieldWidget()
        else:
            field_class, widget = StringField, BS3TextFieldWidget()
        widgets[name] = field_class(lazy_gettext(spec["label"]), widget=widget, description=spec["description"])
    return widgets


def field_behaviour(behaviour: dict[str, Any]) -> dict[str, Any]:
    """Airflow 2.11's snake_case form of a ``ui-field-behaviour`` mapping."""
    return {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
