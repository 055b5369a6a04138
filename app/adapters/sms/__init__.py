"""Text messages to merchant users (the ``SmsSender`` port of app/services/ports.py).

``twilio.TwilioSms`` speaks Twilio's Messages REST API, and ``off.NoSms`` stands in when the
platform sends no SMS (``SMS_PROVIDER=none``), so a notice asked for by SMS is refused for good
instead of waiting for a provider that will never come. Locally and in tests the ``sms_sim``
package plays Twilio over HTTP, so the same adapter code runs against it.
"""
