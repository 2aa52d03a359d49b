"""What logs and audit show of a message's identity: the sender's text is masked when refused."""

from bus.contract.rejections import shown_identity
from bus.observability.hops import Event
from bus.observability.masking import mask_text


def test_a_refused_message_shows_its_id_type_and_dossier_masked() -> None:
    shown = shown_identity(
        "router", Event.DEAD_LETTERED, "id 001190012345", "t 0987654321", "0912345678", mask_text
    )
    assert shown == ("id 001*******345", "t 09******21", "09******78")


def test_an_absent_identity_stays_absent() -> None:
    shown = shown_identity("router", Event.DEAD_LETTERED, None, "", None, mask_text)
    assert shown == (None, "", None)


def test_a_validated_or_delivered_message_shows_its_identity_as_it_is() -> None:
    identity = ("001190012345", "dossier.submitted", "D-0987654321")
    assert shown_identity("router", Event.ROUTED, *identity, mask_text) == identity
    assert shown_identity("dispatcher", Event.DEAD_LETTERED, *identity, mask_text) == identity
