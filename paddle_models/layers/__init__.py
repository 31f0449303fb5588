from .attention import CAM_Module, PAM_Module

__all__ = ["CAM_Module", "PAM_Module"]
