"""Stored responses: the conversations `previous_response_id` continues, and `cortex data export` writes."""
