"""The preference domain's errors; every one has a machine-readable code. Names that are
client input (a channel, a topic, a frequency) are never echoed."""

from __future__ import annotations

from vault.errors import InvalidRequest


class UnknownContactChannel(InvalidRequest):
    code = "unknown_contact_channel"
    default_detail = "No purpose of the policy contacts customers by this contact channel."


class UnknownTopic(InvalidRequest):
    code = "unknown_topic"
    default_detail = "The purpose declares no topic with this id."


class UnknownFrequency(InvalidRequest):
    code = "unknown_frequency"
    default_detail = "The purpose does not offer this frequency."


class ContactChannelRequired(InvalidRequest):
    code = "contact_channel_required"
    default_detail = (
        "The purpose contacts by several contact channels: name the one of this contact with "
        "?contact_channel=."
    )


class PausedUntilInPast(InvalidRequest):
    code = "paused_until_in_past"
    default_detail = "paused_until must lie in the future (send null to end a pause)."


class InvalidPauseDate(InvalidRequest):
    """A form's pause day (/me, the staff counter) outside tomorrow .. two years ahead."""

    code = "invalid_pause_date"
    default_detail = "Choose a day from tomorrow on, within two years."


class NothingToChange(InvalidRequest):
    code = "nothing_to_change"
    default_detail = "Send at least one of contact_channels, topics, frequency or paused_until."
