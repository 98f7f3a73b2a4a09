"""A command plugin that replies through ``ctx.executor`` and returns a result."""

from __future__ import annotations

import asyncio

from takopi.api import CommandContext, CommandResult

_background: list[asyncio.Task[None]] = []


class Echo:
    id = "echo"
    description = "echo the arguments"

    async def handle(self, ctx: CommandContext) -> CommandResult | None:
        await ctx.executor.send(f"echo via executor: {ctx.args_text}")

        async def later() -> None:
            await asyncio.sleep(0.2)
            await ctx.executor.send(f"later: {ctx.args_text}")

        _background.append(asyncio.get_running_loop().create_task(later()))
        return CommandResult(text=f"echo: {ctx.args_text}")


ECHO = Echo()


class ConfigPath:
    id = "cfgpath"
    description = "what load_settings() reads in the command worker"

    async def handle(self, ctx: CommandContext) -> CommandResult | None:
        from takopi_proctest.probe import settings_probe

        return CommandResult(text=settings_probe())


CFGPATH = ConfigPath()
