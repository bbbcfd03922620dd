"""Sending one message through one channel: email, Telegram's Bot API or a generic JSON webhook.

A failure raises ChannelError with a human message for the admin ("Telegram rejected the bot
token…"); the technical detail goes to the log, never with the bot token or the webhook URL, which
are secrets (a Telegram API URL carries the token, so no exception text of `requests` is logged).
"""

import logging
import smtplib

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.utils.translation import gettext as _

from .messages import Message
from .models import AlertChannel

logger = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"
TIMEOUT = (5, 15)
# Telegram's limit for one message's text.
TELEGRAM_MAX = 4096


class ChannelError(Exception):
    """The channel did not take the message; `str()` is the operator's explanation."""


def send(channel: AlertChannel, message: Message) -> None:
    SENDERS[channel.kind](channel, message)


def _email(channel: AlertChannel, message: Message) -> None:
    recipients = channel.recipients
    if not recipients:
        raise ChannelError(_("No recipients: add at least one email address to the channel."))
    try:
        send_mail(message.subject, message.text, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("alert email not sent", extra={"channel": channel.pk, "error_class": type(exc).__name__})
        raise ChannelError(_("The mail server did not accept the message (%(error)s): check EMAIL_URL and the "
                             "recipients.") % {"error": type(exc).__name__}) from None


def _post(channel: AlertChannel, url: str, payload: dict, *, service: str) -> requests.Response:
    try:
        return requests.post(url, json=payload, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        # Never str(exc): it quotes the URL, and with it the bot token or the webhook's secret.
        logger.warning("alert not delivered", extra={"channel": channel.pk, "error_class": type(exc).__name__})
        raise ChannelError(_("%(service)s could not be reached (%(error)s); it is tried again later.") % {
            "service": service, "error": type(exc).__name__}) from None


def _telegram(channel: AlertChannel, message: Message) -> None:
    if not channel.telegram_bot_token or not channel.telegram_chat_id:
        raise ChannelError(_("The bot token or the chat id is missing: fill both in on the channel."))
    url = f"{TELEGRAM_API}/bot{channel.telegram_bot_token}/sendMessage"
    response = _post(channel, url, {"chat_id": channel.telegram_chat_id, "text": message.text[:TELEGRAM_MAX],
                                    "disable_web_page_preview": True}, service="Telegram")
    if response.status_code == 200:
        return
    logger.warning("telegram refused an alert", extra={"channel": channel.pk, "http_status": response.status_code})
    if response.status_code in (401, 404):
        raise ChannelError(_("Telegram rejected the bot token: copy it again from @BotFather."))
    if response.status_code == 403:
        raise ChannelError(_("The bot may not write to this chat (blocked, or removed from the group): add it "
                             "again."))
    if response.status_code == 400:
        raise ChannelError(_("Telegram does not know the chat id: check it, and that the bot was added to the "
                             "chat."))
    if response.status_code == 429:
        raise ChannelError(_("Telegram asked to send less often; it is tried again later."))
    raise ChannelError(_("Telegram answered %(status)d; it is tried again later.") % {
        "status": response.status_code})


def _webhook(channel: AlertChannel, message: Message) -> None:
    if not channel.webhook_url:
        raise ChannelError(_("The webhook URL is missing: fill it in on the channel."))
    payload = {"text": message.text, "title": message.subject, "status": message.status, "url": message.url}
    response = _post(channel, channel.webhook_url, payload, service=_("The webhook"))
    if 200 <= response.status_code < 300:
        return
    logger.warning("webhook refused an alert", extra={"channel": channel.pk, "http_status": response.status_code})
    raise ChannelError(_("The webhook answered %(status)d instead of accepting the message: check its URL.") % {
        "status": response.status_code})


SENDERS = {
    AlertChannel.Kind.EMAIL: _email,
    AlertChannel.Kind.TELEGRAM: _telegram,
    AlertChannel.Kind.WEBHOOK: _webhook,
}
