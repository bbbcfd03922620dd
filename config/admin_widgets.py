"""Form fields a ModelForm declares itself (choices by name, text lists) in the admin theme's widgets.

unfold styles the fields Django builds from model fields; a field the form declares keeps Django's bare
widget and looks out of place. ThemedFormMixin swaps those widgets for unfold's equivalents, keeping their
attributes and choices.
"""

from django import forms
from unfold.widgets import (
    UnfoldAdminSelectMultipleWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

THEMED = {
    forms.Select: UnfoldAdminSelectWidget,
    forms.SelectMultiple: UnfoldAdminSelectMultipleWidget,
    forms.Textarea: UnfoldAdminTextareaWidget,
    forms.TextInput: UnfoldAdminTextInputWidget,
}


def themed(widget: forms.Widget) -> forms.Widget:
    """unfold's widget of the same kind, with the same attributes and choices; other widgets as they are."""
    theme = THEMED.get(type(widget))
    if theme is None:
        return widget
    new = theme(attrs=dict(widget.attrs))
    if hasattr(widget, "choices"):
        new.choices = widget.choices
    new.is_required = widget.is_required
    new.is_localized = widget.is_localized
    return new


class ThemedFormMixin:
    """First among a ModelForm's bases: its declared fields get the admin theme's widgets."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget = themed(field.widget)
