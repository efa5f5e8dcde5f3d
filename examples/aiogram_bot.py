"""An aiogram 3 bot whose command menus `cmdscope serve` keeps right.

On every message it posts the sender's context to cmdscope; `/register` sets a flag first, and
the user's menu becomes the registered one. A command the user does not have is answered with
the one they meant, from their own menu (`GET /v1/suggest`). Environment: BOT_TOKEN, CMDSCOPE_API_KEY,
CMDSCOPE_URL (default http://127.0.0.1:8080), BOT_API_URL (unset: api.telegram.org; set it to a
`cmdscope emulator` to try it offline). See docs/http-api.md.
"""
import asyncio, os
import aiohttp
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

CMDSCOPE = os.environ.get("CMDSCOPE_URL", "http://127.0.0.1:8080")
KEY = {"Authorization": f"Bearer {os.environ['CMDSCOPE_API_KEY']}"}
flags: dict[int, dict] = {}  # the bot's own user table
dp = Dispatcher()

@dp.message()
async def on_message(message: Message, http: aiohttp.ClientSession) -> None:
    user = message.from_user
    if message.text == "/register":
        flags.setdefault(user.id, {})["registered"] = True
        await message.answer("Welcome! Your menu now has the customer commands.")
    context = {"user_id": user.id, "chat_id": message.chat.id, "chat_type": message.chat.type,
               "language_code": user.language_code, "flags": flags.get(user.id, {})}
    async with http.post(f"{CMDSCOPE}/v1/users", json=context, headers=KEY) as answer:
        outcome = await answer.json()  # {"profile": "user", "status": "set", "menu": [...]}
    text = message.text or ""
    if text.startswith("/") and text.split()[0] != "/register":
        await answer_unknown(message, http, context, text)


async def answer_unknown(message: Message, http: aiohttp.ClientSession, context: dict, text: str) -> None:
    """A command the user's menu lacks: say which one they meant, if any (a real bot would
    handle the commands it knows first)."""
    flags = ",".join(f"{k}={str(v).lower()}" if not isinstance(v, str) else f"{k}={v}"
                     for k, v in context["flags"].items())
    query = {"user_id": context["user_id"], "text": text, "flags": flags}
    if context["language_code"]:
        query["language_code"] = context["language_code"]
    if context["chat_type"] != "private":
        query.update(chat_id=context["chat_id"], chat_type=context["chat_type"])
    async with http.get(f"{CMDSCOPE}/v1/suggest", params=query) as answer:
        found = await answer.json()  # {"command": "orders", "description": "...", "exact": false}
    if found.get("command") is None:
        await message.answer(f"Unknown command {text.split()[0]}.")
    elif not found["exact"]:
        await message.answer(f"Unknown command {text.split()[0]}. Did you mean /{found['command']} ({found['description']})?")

async def main() -> None:
    api = os.environ.get("BOT_API_URL")  # unset: api.telegram.org
    session = AiohttpSession(api=TelegramAPIServer.from_base(api)) if api else None
    async with aiohttp.ClientSession() as http:
        await dp.start_polling(Bot(os.environ["BOT_TOKEN"], session=session), http=http)

asyncio.run(main())
