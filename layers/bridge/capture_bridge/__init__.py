"""Capture bridge: a helpdesk asks for a capture of what a user saw, and gets it back as a note.

Helpdesks (`helpdesks/`) call the webhook or the sessions API (`api/`); each capture is stored
(`session_store`), started and followed at its source (`capture/`) by the state machine
(`capture_flow`), and written onto the ticket as one internal note (`notes`).
"""
