"""What logs and audit show of a message's identity: the sender's text is masked when refused."""

from bus.contract.rejections import shown_identity
from bus.observability.masking import mask_text


def test_a_refused_message_shows_its_id_type_and_dossier_masked() -> None:
    shown = shown_identity(
        "router", "invalid", "id 001190012345", "t 0987654321", "0912345678", mask_text
    )
    assert shown == ("id 001*******345", "t 09******21", "09******78")


def test_an_absent_identity_stays_absent() -> None:
    shown = shown_identity("router", "malformed", None, "", None, mask_text)
    assert shown == (None, "", None)


def test_a_replay_the_router_refuses_again_is_masked_like_its_dead_letter() -> None:
    # the router's replayed hop carries the refusal's reason only when it parks the copy
    refused = shown_identity("router", "invalid", "0912345678", None, None, mask_text)
    forwarded = shown_identity("router", None, "0912345678", None, None, mask_text)
    assert (refused[0], forwarded[0]) == ("09******78", "0912345678")


def test_a_validated_or_delivered_message_shows_its_identity_as_it_is() -> None:
    identity = ("001190012345", "dossier.submitted", "D-0987654321")
    assert shown_identity("router", None, *identity, mask_text) == identity
    assert shown_identity("dispatcher", "rejected", *identity, mask_text) == identity
