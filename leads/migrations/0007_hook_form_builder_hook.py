"""The form-builder hook: a secret per source (and its digest), the preset, field aliases, an error URL."""

import django.db.models
from django.db import migrations, models

import leads.models


def give_every_source_a_secret(apps, schema_editor):
    # AddField's callable default is evaluated once for all existing rows: each needs its own secret.
    LeadSource = apps.get_model("leads", "LeadSource")
    for source in LeadSource.objects.only("pk"):
        secret = leads.models.new_hook_secret()
        LeadSource.objects.filter(pk=source.pk).update(
            hook_secret=secret, hook_secret_digest=leads.models.hook_secret_digest(secret))


class Migration(migrations.Migration):

    dependencies = [
        ("leads", "0006_attrib_attribution"),
    ]

    operations = [
        migrations.AddField(
            model_name="leadsource",
            name="error_url",
            field=models.URLField(blank=True, help_text="Where a plain HTML form post that cannot be accepted is redirected (303). Empty: a short page lists what to fix.", max_length=2000, verbose_name="error URL"),
        ),
        migrations.AddField(
            model_name="leadsource",
            name="hook_preset",
            field=models.CharField(choices=[("auto", "Any (all known form builders)"), ("tilda", "Tilda"), ("cf7", "WordPress: Contact Form 7"), ("elementor", "WordPress: Elementor"), ("wpforms", "WordPress: WPForms"), ("none", "None (our field names and the aliases only)")], default="auto", help_text="Which form builder posts to the hook URL: its field names are understood without aliases.", max_length=12, verbose_name="form builder"),
        ),
        migrations.AddField(
            model_name="leadsource",
            name="hook_aliases",
            field=models.JSONField(blank=True, default=dict, help_text='The sender\'s field name → ours, e.g. {"Ваше имя": "name", "Город": "city"}. Ours: name, phone, email, message, utm_…, page_url, referrer; any other name goes to the extra fields.', verbose_name="field aliases"),
        ),
        migrations.AddField(
            model_name="leadsource",
            name="hook_secret",
            field=models.CharField(default="", editable=False, max_length=64, verbose_name="hook secret"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="leadsource",
            name="hook_secret_digest",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(give_every_source_a_secret, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="leadsource",
            name="hook_secret",
            field=models.CharField(default=leads.models.new_hook_secret, editable=False, max_length=64, unique=True, verbose_name="hook secret"),
        ),
        migrations.AlterField(
            model_name="leadsource",
            name="hook_secret_digest",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
    ]
