"""Reverse each URL once per process: the URL configuration does not change while the shop runs.

Profiling a warm basket page showed a quarter of its time in ``reverse()``
(three URLs per basket line, eight in the page header). Results are kept per
view name, arguments, URL configuration, script prefix and current app, so the
answer is always what Django's ``reverse()`` would give; only plain strings
and integers are cached as arguments, anything else goes straight to Django.

``reverse`` is for Python code; the template library replaces ``{% url %}``
in every template (it is a builtin in the TEMPLATES setting) with the same
tag, cached.
"""

from __future__ import annotations

from functools import lru_cache

from django import template
from django.conf import settings
from django.template.defaulttags import URLNode
from django.template.defaulttags import url as django_url_tag
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf
from django.urls import reverse as django_reverse
from django.utils.html import conditional_escape

CACHE_SIZE = 8192
_PLAIN = (str, int)


@lru_cache(maxsize=CACHE_SIZE)
def _reverse(viewname: str, args: tuple, kwargs: tuple, urlconf, prefix: str, current_app) -> str:
    return django_reverse(viewname, urlconf=urlconf, args=args, kwargs=dict(kwargs), current_app=current_app)


def reverse(viewname, urlconf=None, args=None, kwargs=None, current_app=None, *, query=None, fragment=None) -> str:
    """Django's ``reverse()``, remembered for plain arguments (the shop has one language: USE_I18N off)."""
    args, kwargs = tuple(args or ()), kwargs or {}
    if query is not None or fragment is not None:
        return django_reverse(
            viewname,
            urlconf=urlconf,
            args=args,
            kwargs=kwargs,
            current_app=current_app,
            query=query,
            fragment=fragment,
        )
    if (
        isinstance(viewname, str)
        and all(type(a) in _PLAIN for a in args)
        and all(type(v) in _PLAIN for v in kwargs.values())
    ):
        return _reverse(
            viewname,
            args,
            tuple(sorted(kwargs.items())),
            urlconf or get_urlconf(settings.ROOT_URLCONF),
            get_script_prefix(),
            current_app,
        )
    return django_reverse(viewname, urlconf=urlconf, args=args, kwargs=kwargs, current_app=current_app)


register = template.Library()


class CachedURLNode(URLNode):
    """``{% url %}`` through the cached ``reverse``; otherwise Django's own node."""

    def render(self, context):
        args = [arg.resolve(context) for arg in self.args]
        kwargs = {k: v.resolve(context) for k, v in self.kwargs.items()}
        view_name = self.view_name.resolve(context)
        try:
            current_app = context.request.current_app
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace
            except AttributeError:
                current_app = None
        url = ""
        try:
            url = reverse(view_name, args=args, kwargs=kwargs, current_app=current_app)
        except NoReverseMatch:
            if self.asvar is None:
                raise
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


@register.tag
def url(parser, token):
    node = django_url_tag(parser, token)
    return CachedURLNode(node.view_name, node.args, node.kwargs, node.asvar)
