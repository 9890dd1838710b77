"""The IVR, AMD and FastAGI settings, under their old name: they are config models (`dialer.config.ivr`)."""

from dialer.config.ivr import AgiConfig, AmdConfig, AmdParameters, IvrConfig, OnMachine

__all__ = ["AgiConfig", "AmdConfig", "AmdParameters", "IvrConfig", "OnMachine"]
