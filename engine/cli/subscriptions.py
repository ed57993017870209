"""``aftercare subscriptions ...``: who receives journey events as signed webhooks,
through the gRPC API (SubscriptionsService; the key needs subscriptions:admin).

    aftercare subscriptions add https://crm.example.com/hooks/aftercare --event message.sent
    aftercare subscriptions list
    aftercare subscriptions remove sub_0123...
"""

from __future__ import annotations

from typing import Annotated

import typer
from aftercare.v1 import subscriptions_pb2 as pb

from clients import AftercareClient
from engine.cli.connection import ApiKeyOption, call_api

subscriptions_app = typer.Typer(
    help="Webhook subscribers of journey events (subscriptions:admin).", no_args_is_help=True
)


@subscriptions_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="Where events are POSTed (https).")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="An event type to receive (repeatable; default: all)."),
    ] = None,
    personal_data: Annotated[
        bool,
        typer.Option(
            "--personal-data", help="Include names, addresses and comments in the events."
        ),
    ] = False,
    api_key: ApiKeyOption = None,
) -> None:
    """Subscribe URL; prints the subscription id and its signing secret (shown once)."""

    async def work(client: AftercareClient) -> pb.CreateSubscriptionResponse:
        return await client.create_subscription(
            url, list(event or []), include_personal_data=personal_data
        )

    created = call_api(work, api_key)
    typer.echo(f"subscription {created.subscription.subscription_id}")
    typer.echo(f"secret {created.secret}  (verify webhook-signature with it; not shown again)")


@subscriptions_app.command("list")
def list_command(api_key: ApiKeyOption = None) -> None:
    """The active subscriptions, oldest first."""

    async def work(client: AftercareClient) -> pb.ListSubscriptionsResponse:
        return await client.list_subscriptions()

    listed = call_api(work, api_key)
    if not listed.subscriptions:
        typer.echo("no subscriptions")
    for subscription in listed.subscriptions:
        types = ",".join(subscription.event_types) or "*"
        personal = " personal-data" if subscription.include_personal_data else ""
        typer.echo(f"{subscription.subscription_id}  {subscription.url}  {types}{personal}")


@subscriptions_app.command("remove")
def remove(
    subscription_id: Annotated[str, typer.Argument(help="The id `list` shows.")],
    api_key: ApiKeyOption = None,
) -> None:
    """Stop deliveries to the subscription."""

    async def work(client: AftercareClient) -> pb.RemoveSubscriptionResponse:
        return await client.remove_subscription(subscription_id)

    call_api(work, api_key)
    typer.echo(f"{subscription_id}: removed")
