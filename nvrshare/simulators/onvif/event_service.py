"""Event service: CreatePullPointSubscription, and PullMessages / Renew / Unsubscribe /
SetSynchronizationPoint on the subscription's own address (``/onvif/pullpoint/<id>``).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from .context import Handler, OperationContext, qname
from .pullpoint import EventMessage, PullPointSubscription, SubscriptionError
from .soap import (
    NAMESPACES,
    SoapFault,
    SoapRequest,
    attr,
    child_text,
    parse_duration,
    parse_termination,
    text,
    xs_datetime,
)

TEV = NAMESPACES["tev"]
WSNT = NAMESPACES["wsnt"]
_CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
_MIN_PULL_TIMEOUT = 0.0


def _resource_unknown(exc: Exception) -> SoapFault:
    return SoapFault(str(exc), subcode="wsrf-rw:ResourceUnknownFault", detail_subcode=None)


def _termination_seconds(ctx: OperationContext, raw: str | None) -> float:
    if not raw:
        return ctx.config.default_termination
    return parse_termination(raw, now=ctx.wall_now)


def _times(ctx: OperationContext, subscription: PullPointSubscription) -> tuple[str, str]:
    """(CurrentTime, TerminationTime) on the wall clock, from the monotonic expiry."""
    wall = ctx.state.wall_clock()
    remaining = max(0.0, subscription.expires_at - ctx.state.clock())
    return xs_datetime(wall), xs_datetime(wall + dt.timedelta(seconds=remaining))


def _subscription(ctx: OperationContext) -> PullPointSubscription:
    if ctx.subscription_id is None:
        raise SoapFault(
            "call this on the subscription address",
            subcode="ter:ActionNotSupported",
            sender=False,
        )
    try:
        return ctx.state.broker.get(
            ctx.subscription_id, ctx.state.clock()
        )  # re-read: may follow a long poll
    except SubscriptionError as exc:
        raise _resource_unknown(exc) from None


def _items(items: tuple[tuple[str, str], ...]) -> str:
    return "".join(
        f"<tt:SimpleItem Name={attr(name)} Value={attr(value)}/>" for name, value in items
    )


def message_xml(message: EventMessage) -> str:
    return (
        "<wsnt:NotificationMessage>"
        f'<wsnt:Topic Dialect="{_CONCRETE_SET}">{text(message.topic)}</wsnt:Topic>'
        "<wsnt:Message>"
        f"<tt:Message UtcTime={attr(xs_datetime(message.utc_time))} "
        f"PropertyOperation={attr(message.operation)}>"
        f"<tt:Source>{_items(message.source)}</tt:Source>"
        f"<tt:Data>{_items(message.data)}</tt:Data>"
        "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
    )


async def create_pull_point_subscription(ctx: OperationContext, request: SoapRequest) -> str:
    seconds = _termination_seconds(ctx, child_text(request.body, TEV, "InitialTerminationTime"))
    try:
        subscription = ctx.state.broker.create(
            ctx.now, seconds=seconds, initial=ctx.state.initial_messages()
        )
    except SubscriptionError as exc:
        raise SoapFault(
            str(exc), subcode="wsntw:SubscribeCreationFailedFault", sender=False
        ) from None
    current, termination = _times(ctx, subscription)
    address = f"{ctx.base_url}/onvif/pullpoint/{subscription.id}"
    return (
        "<tev:CreatePullPointSubscriptionResponse>"
        f"<tev:SubscriptionReference><wsa:Address>{text(address)}</wsa:Address>"
        "</tev:SubscriptionReference>"
        f"<wsnt:CurrentTime>{current}</wsnt:CurrentTime>"
        f"<wsnt:TerminationTime>{termination}</wsnt:TerminationTime>"
        "</tev:CreatePullPointSubscriptionResponse>"
    )


async def pull_messages(ctx: OperationContext, request: SoapRequest) -> str:
    subscription = _subscription(ctx)
    raw_timeout = child_text(request.body, TEV, "Timeout")
    raw_limit = child_text(request.body, TEV, "MessageLimit")
    timeout = parse_duration(raw_timeout) if raw_timeout else 0.0
    timeout = min(max(timeout, _MIN_PULL_TIMEOUT), ctx.config.max_pull_timeout)
    try:
        limit = int(raw_limit) if raw_limit else ctx.config.max_message_limit
    except ValueError:
        raise SoapFault("MessageLimit is not an integer") from None
    limit = min(max(limit, 1), ctx.config.max_message_limit)
    if not subscription.queue and timeout > 0:
        try:
            async with asyncio.timeout(timeout):
                await subscription.wakeup.wait()
        except TimeoutError:
            pass
        # Unsubscribed, expired or shut down while we waited: say so instead of an empty pull.
        subscription = _subscription(ctx) if not ctx.state.broker.closed else subscription
    messages = "".join(message_xml(message) for message in subscription.take(limit))
    current, termination = _times(ctx, subscription)
    return (
        "<tev:PullMessagesResponse>"
        f"<tev:CurrentTime>{current}</tev:CurrentTime>"
        f"<tev:TerminationTime>{termination}</tev:TerminationTime>"
        f"{messages}</tev:PullMessagesResponse>"
    )


async def renew(ctx: OperationContext, request: SoapRequest) -> str:
    _subscription(ctx)
    seconds = _termination_seconds(ctx, child_text(request.body, WSNT, "TerminationTime"))
    assert ctx.subscription_id is not None
    try:
        subscription = ctx.state.broker.renew(ctx.subscription_id, ctx.now, seconds=seconds)
    except SubscriptionError as exc:
        raise _resource_unknown(exc) from None
    current, termination = _times(ctx, subscription)
    return (
        "<wsnt:RenewResponse>"
        f"<wsnt:TerminationTime>{termination}</wsnt:TerminationTime>"
        f"<wsnt:CurrentTime>{current}</wsnt:CurrentTime>"
        "</wsnt:RenewResponse>"
    )


async def unsubscribe(ctx: OperationContext, _request: SoapRequest) -> str:
    subscription = _subscription(ctx)
    ctx.state.broker.unsubscribe(subscription.id, ctx.now)
    return "<wsnt:UnsubscribeResponse/>"


async def set_synchronization_point(ctx: OperationContext, _request: SoapRequest) -> str:
    subscription = _subscription(ctx)
    subscription.queue.extend(ctx.state.initial_messages())
    subscription.wakeup.set()
    return "<tev:SetSynchronizationPointResponse/>"


async def get_service_capabilities(ctx: OperationContext, _request: SoapRequest) -> str:
    del ctx
    return (
        "<tev:GetServiceCapabilitiesResponse>"
        '<tev:Capabilities WSSubscriptionPolicySupport="false" WSPullPointSupport="true" '
        'WSPausableSubscriptionManagerInterfaceSupport="false" MaxNotificationProducers="0" '
        'MaxPullPoints="16" PersistentNotificationStorage="false"/>'
        "</tev:GetServiceCapabilitiesResponse>"
    )


OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("tev", "CreatePullPointSubscription"): create_pull_point_subscription,
    qname("tev", "GetServiceCapabilities"): get_service_capabilities,
}

SUBSCRIPTION_OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("tev", "PullMessages"): pull_messages,
    qname("tev", "SetSynchronizationPoint"): set_synchronization_point,
    qname("wsnt", "Renew"): renew,
    qname("wsnt", "Unsubscribe"): unsubscribe,
}
