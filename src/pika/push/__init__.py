"""Web Push (issue 16): a DJ's `push: true` announcement reaches phones whose page is closed.

`keys` holds the server's VAPID key pair, `sender` the bounded queue and the few workers that
encrypt and post each push off the live path, `endpoints` which hosts a push may go to; the HTTP
API pages subscribe with lives in http/sessions.py.
"""
