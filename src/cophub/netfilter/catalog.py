"""Services a group (or a schedule slot) can block by name: the domains each one uses.

Blocking a service blocks its domains and every name under them. The lists
cover the app and the web site, their content servers and the domains the
apps call at start-up; a service that also runs under a parent company's
shared domains (Facebook and Instagram both use fbcdn.net) lists those
domains with each service that needs them, so blocking one does not depend
on blocking the other.

The keys are stable: groups and slots store them (`blocked_services`), and
the policy snapshot carries this catalogue to the resolver
(docs/netfilter.md, "services").
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

# key -> {"name": shown name (brand names are not translated), "domains": [...], "kind": a Category value}
SERVICES: dict[str, dict] = {
    "zalo": {
        "name": "Zalo",
        "kind": "chat",
        "domains": ["zalo.me", "zaloapp.com", "zalo.vn", "zadn.vn", "zdn.vn", "zaloweb.me"],
    },
    "facebook": {
        "name": "Facebook",
        "kind": "social",
        "domains": ["facebook.com", "facebook.net", "fb.com", "fb.me", "fb.gg", "fbcdn.net", "fbsbx.com", "fbpigeon.com",
                    "facebook.com.vn", "fb.watch", "thefacebook.com", "facebookmail.com"],
    },
    "messenger": {
        "name": "Messenger",
        "kind": "chat",
        "domains": ["messenger.com", "m.me", "msngr.com", "fbcdn.net", "fbsbx.com", "fbpigeon.com"],
    },
    "instagram": {
        "name": "Instagram",
        "kind": "social",
        "domains": ["instagram.com", "cdninstagram.com", "instagr.am", "ig.me", "igcdn.com", "fbcdn.net"],
    },
    "threads": {
        "name": "Threads",
        "kind": "social",
        "domains": ["threads.net", "threads.com", "cdninstagram.com"],
    },
    "whatsapp": {
        "name": "WhatsApp",
        "kind": "chat",
        "domains": ["whatsapp.com", "whatsapp.net", "wa.me", "whatsapp.biz"],
    },
    "tiktok": {
        "name": "TikTok",
        "kind": "social",
        "domains": ["tiktok.com", "tiktokv.com", "tiktokcdn.com", "tiktokcdn-us.com", "tiktokv.us", "tiktokw.us", "tiktok.org",
                    "byteoversea.com", "byteoversea.net", "ibytedtos.com", "ibyteimg.com", "ipstatp.com", "muscdn.com",
                    "musical.ly", "tik-tokapi.com", "ttwstatic.com", "ttlivecdn.com", "bytedapm.com"],
    },
    "youtube": {
        "name": "YouTube",
        "kind": "video",
        "domains": ["youtube.com", "youtu.be", "ytimg.com", "googlevideo.com", "youtube-nocookie.com", "youtubei.googleapis.com",
                    "youtube.googleapis.com", "yt.be", "youtubekids.com"],
    },
    "twitter": {
        "name": "X (Twitter)",
        "kind": "social",
        "domains": ["twitter.com", "x.com", "t.co", "twimg.com", "twttr.com", "twitter.co", "tweetdeck.com"],
    },
    "snapchat": {
        "name": "Snapchat",
        "kind": "social",
        "domains": ["snapchat.com", "snap.com", "snapkit.com", "snapads.com", "sc-cdn.net", "sc-static.net", "snap-dev.net",
                    "feelinsonice.appspot.com", "feelinsonice-hrd.appspot.com"],
    },
    "telegram": {
        "name": "Telegram",
        "kind": "chat",
        "domains": ["telegram.org", "telegram.me", "t.me", "telegram.dog", "telegra.ph", "telesco.pe", "tdesktop.com", "cdn-telegram.org"],
    },
    "discord": {
        "name": "Discord",
        "kind": "chat",
        "domains": ["discord.com", "discord.gg", "discordapp.com", "discordapp.net", "discord.media", "discordcdn.com",
                    "discord.co", "discord.dev", "discord.new", "discordstatus.com", "dis.gd"],
    },
    "reddit": {
        "name": "Reddit",
        "kind": "social",
        "domains": ["reddit.com", "redd.it", "redditmedia.com", "redditstatic.com", "reddituploads.com", "reddit.map.fastly.net"],
    },
    "pinterest": {
        "name": "Pinterest",
        "kind": "social",
        "domains": ["pinterest.com", "pinimg.com", "pin.it", "pinterest.net"],
    },
    "netflix": {
        "name": "Netflix",
        "kind": "video",
        "domains": ["netflix.com", "netflix.net", "nflxext.com", "nflximg.com", "nflximg.net", "nflxso.net", "nflxvideo.net",
                    "nflxsearch.net", "fast.com"],
    },
    "twitch": {
        "name": "Twitch",
        "kind": "video",
        "domains": ["twitch.tv", "ttvnw.net", "jtvnw.net", "twitchcdn.net", "twitchsvc.net", "ext-twitch.tv", "twitch.a2z.com"],
    },
    "roblox": {
        "name": "Roblox",
        "kind": "games",
        "domains": ["roblox.com", "rbxcdn.com", "rbx.com", "robloxlabs.com", "roblox.cn", "roblox.qq.com", "rbxtrk.com",
                    "roblox.plus", "rbx.cloud"],
    },
    "garena": {
        "name": "Garena",
        "kind": "games",
        "domains": ["garena.com", "garena.vn", "garenanow.com", "garena.live", "gcdn.garenanow.com", "gxx.garenanow.com"],
    },
    "freefire": {
        "name": "Free Fire",
        "kind": "games",
        "domains": ["ff.garena.com", "ff.garena.vn", "freefiremobile.com", "freefire.garena.vn", "ff.sea.garena.com",
                    "dl.cdn.freefiremobile.com", "freefire.garena.com"],
    },
    "lienquan": {
        "name": "Liên Quân Mobile",
        "kind": "games",
        "domains": ["lienquan.garena.vn", "lq.garena.vn", "arenaofvalor.com", "aov.garena.com", "lienquan.vn"],
    },
    "pubg": {
        "name": "PUBG",
        "kind": "games",
        "domains": ["pubg.com", "pubgmobile.com", "pubgm.vn", "vnggames.com", "igamecj.com", "gcloudsdk.com", "proximabeta.com",
                    "krafton.com", "playbattlegrounds.com"],
    },
    "minecraft": {
        "name": "Minecraft",
        "kind": "games",
        "domains": ["minecraft.net", "minecraftservices.com", "mojang.com", "minecraft-services.net", "playfabapi.com",
                    "minecraftprod.rtep.msgamestudios.com"],
    },
    "fortnite": {
        "name": "Fortnite (Epic Games)",
        "kind": "games",
        "domains": ["fortnite.com", "epicgames.com", "epicgames.dev", "unrealengine.com", "epicgames.net", "ol.epicgames.com",
                    "fortnite.qq.com"],
    },
    "steam": {
        "name": "Steam",
        "kind": "games",
        "domains": ["steampowered.com", "steamcommunity.com", "steamstatic.com", "steamcontent.com", "steamgames.com",
                    "steamusercontent.com", "steamserver.net", "steam-chat.com", "valvesoftware.com"],
    },
    "genshin": {
        "name": "Genshin Impact (HoYoverse)",
        "kind": "games",
        "domains": ["hoyoverse.com", "mihoyo.com", "hoyolab.com", "genshin.hoyoverse.com", "yuanshen.com"],
    },
    "tinder": {
        "name": "Tinder",
        "kind": "chat",
        "domains": ["tinder.com", "gotinder.com", "tindersparks.com"],
    },
    "dating": {
        "name": _("Dating apps"),
        "kind": "chat",
        "domains": ["tinder.com", "gotinder.com", "bumble.com", "bumble.app", "badoo.com", "badoocdn.com", "okcupid.com",
                    "hinge.co", "tantan.com", "omegle.com", "ome.tv", "azarlive.com", "hpcnt.com"],
    },
    "bigo": {
        "name": "Bigo Live",
        "kind": "video",
        "domains": ["bigo.tv", "bigolive.tv", "bigo.sg", "bigocdn.com", "likee.video", "like.video", "likeevideo.com"],
    },
}


def service_name(key: str) -> str:
    """The shown name of a service (the key itself for an unknown one, e.g. one removed since)."""
    entry = SERVICES.get(key)
    return str(entry["name"]) if entry else key


def choices() -> list[tuple[str, str]]:
    """(key, name) pairs sorted by name, for forms."""
    return sorted(((key, str(entry["name"])) for key, entry in SERVICES.items()), key=lambda pair: pair[1].lower())


def snapshot() -> dict[str, dict]:
    """The catalogue as policy.json carries it: {"key": {"name", "domains"}} (names in the active language)."""
    return {key: {"name": str(entry["name"]), "domains": sorted(set(entry["domains"]))} for key, entry in SERVICES.items()}
