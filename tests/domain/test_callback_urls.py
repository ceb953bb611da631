"""The rules a callback URL must meet, when it is set and again before each POST."""

from __future__ import annotations

import ipaddress

import pytest

from smsgw.domain.callback_urls import BadCallbackUrl, PrivateDestination, check_callback_url, is_public_address, refuse_private

GOOD = [
    pytest.param("https://acme.example/dlr", id="https"),
    pytest.param("http://127.0.0.1:8080/dlr?x=1", id="ipv4-and-port"),
    pytest.param("http://[::1]:8080/dlr", id="ipv6"),
    pytest.param("HTTPS://Acme.Example./dlr", id="upper-case-and-trailing-dot"),
    pytest.param("https://münchen.example/dlr", id="unicode-host"),
    pytest.param("https://xn--mnchen-3ya.example/dlr", id="a-label"),
    pytest.param("http://user:pass@dlr_receiver:65535/", id="userinfo-underscore-top-port"),
]

BAD = [
    pytest.param("", "empty", id="empty"),
    pytest.param("ftp://acme.example/dlr", "http:// or https://", id="scheme"),
    pytest.param("acme.example/dlr", "http:// or https://", id="no-scheme"),
    pytest.param("http:///dlr", "no host", id="no-host"),
    pytest.param("http://127.0.0.1:99999/dlr", "cannot be parsed", id="port-too-high"),
    pytest.param("http://127.0.0.1:0/dlr", "port 0", id="port-zero"),
    pytest.param("http://127.0.0.1:http/dlr", "cannot be parsed", id="port-not-a-number"),
    pytest.param("http://xn--/", "not a valid host name", id="empty-a-label"),
    pytest.param("http://xn--zz.example/", "invalid IDNA label", id="bad-a-label"),
    pytest.param("http://a..b/", "not a valid host name", id="empty-label"),
    pytest.param("http://-acme.example/", "not a valid host name", id="leading-hyphen"),
    pytest.param("http://999.1.1.1/", "not an IPv4 address", id="ipv4-out-of-range"),
    pytest.param("http://[::1/", "cannot be parsed", id="open-bracket"),
    pytest.param("http://[fe80::zz]/", "IPv6 address", id="bad-ipv6"),
    pytest.param("http://acme.example/dlr\r\nX-Injected: 1", "U+000D", id="crlf"),
    pytest.param("http://acme.example/\x00", "U+0000", id="nul"),
    pytest.param("http://acme.example/a b", "U+0020", id="space"),
    pytest.param("http://acme.example/\tdlr", "U+0009", id="tab"),
    pytest.param("http://acme.example/\u200bdlr", "U+200B", id="zero-width-space"),
    pytest.param("http://☃☃.example/\u2028", "U+2028", id="line-separator"),
    pytest.param("http://a" + "b" * 2000 + ".example/", "longer than 2000", id="too-long"),
    pytest.param("http://" + "a" * 64 + ".example/", "not a valid host name", id="label-too-long"),
]


@pytest.mark.parametrize("url", GOOD)
def test_good_urls_pass(url):
    check_callback_url(url)


@pytest.mark.parametrize(("url", "reason"), BAD)
def test_bad_urls_are_refused_with_the_reason(url, reason):
    with pytest.raises(BadCallbackUrl) as refused:
        check_callback_url(url)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        pytest.param("93.184.216.34", True, id="public-v4"),
        pytest.param("2606:2800:220:1:248:1893:25c8:1946", True, id="public-v6"),
        pytest.param("127.0.0.1", False, id="loopback"),
        pytest.param("10.0.0.1", False, id="private-10"),
        pytest.param("172.16.5.4", False, id="private-172"),
        pytest.param("192.168.1.1", False, id="private-192"),
        pytest.param("169.254.169.254", False, id="metadata-link-local"),
        pytest.param("100.64.0.1", False, id="shared-cgnat"),
        pytest.param("0.0.0.0", False, id="unspecified"),
        pytest.param("224.0.0.1", False, id="multicast"),
        pytest.param("::1", False, id="loopback-v6"),
        pytest.param("fe80::1", False, id="link-local-v6"),
        pytest.param("fd00::1", False, id="unique-local-v6"),
        pytest.param("::ffff:127.0.0.1", False, id="v4-mapped-loopback"),
        pytest.param("::ffff:93.184.216.34", True, id="v4-mapped-public"),
    ],
)
def test_public_addresses(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("host", "resolved", "refused"),
    [
        pytest.param("acme.example", ["93.184.216.34"], False, id="public-name"),
        pytest.param("acme.example", ["93.184.216.34", "10.0.0.7"], True, id="one-private-among-public"),
        pytest.param("localhost", ["127.0.0.1", "::1"], True, id="name-to-loopback"),
        pytest.param("fe80-host", ["fe80::1%eth0"], True, id="scoped-link-local"),
        pytest.param("odd", ["not-an-address"], True, id="unreadable"),
    ],
)
def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public(host, resolved, refused):
    if refused:
        with pytest.raises(PrivateDestination, match="is not a public address"):
            refuse_private(host, resolved)
    else:
        refuse_private(host, resolved)
